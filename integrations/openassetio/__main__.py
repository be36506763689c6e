"""`python -m backlot.integrations.openassetio`: print the folder to put on OPENASSETIO_PLUGIN_PATH."""

from backlot.integrations.openassetio import PLUGIN_PATH

print(PLUGIN_PATH)
