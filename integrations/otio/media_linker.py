"""The `backlot` OTIO media linker (loaded by OTIO from this file; the work is in linking.py)."""

from backlot.integrations.otio.linking import link_clip


def link_media_reference(in_clip, media_linker_argument_map=None):
    """Point a clip at its Backlot shot's version: an image sequence or movie in Backlot's store.

    Arguments (`-M key=value` with otioconvert, or media_linker_argument_map):
    project (required, or BACKLOT_PROJECT), policy (approved | latest, default approved),
    media (sequence | movie, default sequence),
    refresh (true: reload the project instead of using the last few seconds' snapshot).
    The clip's source range moves to the version's frames; metadata["backlot"] names the
    version. Clips Backlot cannot place keep their media (None is returned).
    """
    return link_clip(in_clip, media_linker_argument_map or {})
