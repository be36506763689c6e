"""`python -m integrations.openassetio`: print the folder to put on OPENASSETIO_PLUGIN_PATH."""

from integrations.openassetio import PLUGIN_PATH

print(PLUGIN_PATH)
