"""Backlot's OpenAssetIO manager plugin (identifier `org.backlot.manager`).

Hosts find it through the `openassetio.manager_plugin` entry point of the installed
`backlot` package, or through OPENASSETIO_PLUGIN_PATH set to `PLUGIN_PATH` (printed by
`python -m backlot.integrations.openassetio`). Importing this module is cheap: the manager, the
database code and SQLAlchemy load only when a host instantiates the plugin.
See docs/openassetio.md.
"""

from __future__ import annotations

from pathlib import Path

from openassetio.pluginSystem import PythonPluginSystemManagerPlugin

IDENTIFIER = "org.backlot.manager"
PLUGIN_PATH = str(Path(__file__).resolve().parent / "plugin_path")


class BacklotManagerPlugin(PythonPluginSystemManagerPlugin):
    """The plugin OpenAssetIO's plugin system registers; it makes BacklotManagerInterface instances."""

    @classmethod
    def identifier(cls) -> str:
        return IDENTIFIER

    @classmethod
    def interface(cls):
        from backlot.integrations.openassetio.manager import BacklotManagerInterface

        return BacklotManagerInterface()


# The name OpenAssetIO's plugin system looks for.
openassetioPlugin = BacklotManagerPlugin
