"""OpenTimelineIO plugin: a media linker that relinks clips to Backlot shot versions.

Registered through the `opentimelineio.plugins` entry point (pyproject.toml), so OTIO's
own tools find it once Backlot is installed:

    otioconvert -i cut.edl -o linked.otio -a rate=24 -m backlot -M project=film -M policy=approved
    OTIO_DEFAULT_MEDIA_LINKER=backlot  # or make it the default for every read

Importing this package stays cheap (OTIO loads every plugin's manifest at start-up); the
linker imports Backlot's pipeline only when it runs.
"""

from __future__ import annotations

_MANIFEST = """{
    "OTIO_SCHEMA": "PluginManifest.1",
    "media_linkers": [
        {
            "OTIO_SCHEMA": "MediaLinker.1",
            "name": "backlot",
            "execution_scope": "in process",
            "filepath": "media_linker.py"
        }
    ]
}"""


def plugin_manifest():
    """The manifest OTIO reads through the entry point; paths are relative to this package."""
    from opentimelineio.plugins import manifest

    return manifest.manifest_from_string(_MANIFEST)
