"""OPENASSETIO_PLUGIN_PATH entry for Backlot's manager plugin.

OpenAssetIO loads this file by path; it hands over to the installed package so that the
plugin's classes are the same ones a host imports (one copy, whichever way it was found).
"""

from backlot.integrations.openassetio import BacklotManagerPlugin

openassetioPlugin = BacklotManagerPlugin
