"""Reading a .otio file straight into small typed structs, for import.

OTIO's own read of a 2-hour cut builds a C++ object for everything in the file, and every
attribute the cut walk reads afterwards crosses OTIO's Python bindings. Import needs a few
fields per clip. msgspec decodes the file into the structs below in one pass, skipping
every field they do not declare.

The structs answer the calls the cut walk (flatten.py) and the mapping rules (mapping.py)
make of OTIO objects — `duration()`, `trimmed_range()`, `media_reference`, `metadata`,
`markers`, `effects`, `video_tracks()` — by OTIO's rules for these schemas. They cover the
common shape of a cut only: a timeline whose stack holds tracks of clips, gaps and
transitions, each schema at the version this OTIO writes. For anything else — nested
stacks or tracks, a plugin's media reference or effect, NaN or infinite times, an older
schema, a collection of timelines, a hook run after reads — `read_timeline` returns None
and the file goes through OTIO. Tests check that both reads give the same cut.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Union

import msgspec
import opentimelineio as otio

# The schema versions these structs follow; with any other OTIO, every file goes through OTIO.
_VERSIONS = {"Timeline": 1, "Stack": 1, "Track": 1, "Clip": 2, "Gap": 1, "Transition": 1, "Marker": 2,
             "ExternalReference": 1, "ImageSequenceReference": 1, "MissingReference": 1, "GeneratorReference": 1,
             "Effect": 1, "TimeEffect": 1, "LinearTimeWarp": 1, "FreezeFrame": 1}
_READ_HOOKS = ("post_adapter_read",)  # media linking is off for reads (DoNotLinkMedia)
_SCHEMA = "OTIO_SCHEMA"


class RationalTime(msgspec.Struct, gc=False):
    value: float
    rate: float


class TimeRange(msgspec.Struct, gc=False):
    start_time: RationalTime
    duration: RationalTime


def _tagged(name: str) -> dict[str, str]:
    return {"tag_field": _SCHEMA, "tag": f"{name}.{_VERSIONS[name]}"}


class ExternalReference(msgspec.Struct, gc=False, **_tagged("ExternalReference")):
    target_url: str = ""
    available_range: TimeRange | None = None


class ImageSequenceReference(msgspec.Struct, gc=False, **_tagged("ImageSequenceReference")):
    target_url_base: str = ""
    name_prefix: str = ""
    name_suffix: str = ""
    available_range: TimeRange | None = None


class MissingReference(msgspec.Struct, gc=False, **_tagged("MissingReference")):
    available_range: TimeRange | None = None


class GeneratorReference(msgspec.Struct, gc=False, **_tagged("GeneratorReference")):
    available_range: TimeRange | None = None


class Effect(msgspec.Struct, gc=False, **_tagged("Effect")):
    pass


class TimeEffect(msgspec.Struct, gc=False, **_tagged("TimeEffect")):
    pass


class LinearTimeWarp(msgspec.Struct, gc=False, **_tagged("LinearTimeWarp")):
    time_scalar: float = 1.0


class FreezeFrame(msgspec.Struct, gc=False, **_tagged("FreezeFrame")):
    pass


class Marker(msgspec.Struct, gc=False, **_tagged("Marker")):
    name: str = ""
    comment: str = ""


_Reference = Union[ExternalReference, ImageSequenceReference, MissingReference, GeneratorReference]
_Effect = Union[Effect, TimeEffect, LinearTimeWarp, FreezeFrame]


class Clip(msgspec.Struct, gc=False, **_tagged("Clip")):
    name: str = ""
    source_range: TimeRange | None = None
    enabled: bool = True
    metadata: dict[str, Any] = {}
    markers: list[Marker] = []
    effects: list[_Effect] = []
    media_references: dict[str, _Reference] = {}
    active_media_reference_key: str = "DEFAULT_MEDIA"

    def __post_init__(self) -> None:
        if self.active_media_reference_key not in self.media_references:
            raise ValueError("the active media reference is not among the clip's references")

    @property
    def media_reference(self) -> _Reference:
        return self.media_references[self.active_media_reference_key]

    def trimmed_range(self) -> TimeRange:
        """The source range, else the media's available range (OTIO: an error when neither is set)."""
        if self.source_range is not None:
            return self.source_range
        available = self.media_reference.available_range
        if available is None:
            raise ValueError("the clip has no source range and its media no available range")
        return available

    def duration(self) -> RationalTime:
        return self.trimmed_range().duration


class Gap(msgspec.Struct, gc=False, **_tagged("Gap")):
    source_range: TimeRange  # OTIO always writes a gap's range; without one, OTIO decides
    name: str = ""
    enabled: bool = True

    def duration(self) -> RationalTime:
        return self.source_range.duration


class Transition(msgspec.Struct, gc=False, **_tagged("Transition")):
    in_offset: RationalTime
    out_offset: RationalTime
    name: str = ""

    def duration(self) -> RationalTime:
        """in_offset + out_offset, at the finer of their rates (as OTIO adds times)."""
        a, b = sorted((self.in_offset, self.out_offset), key=lambda t: t.rate)
        return RationalTime(a.value * b.rate / a.rate + b.value, b.rate)


class Track(msgspec.Struct, gc=False, **_tagged("Track")):
    name: str = ""
    kind: str = "Video"
    enabled: bool = True
    source_range: TimeRange | None = None
    children: list[Union[Clip, Gap, Transition]] = []

    def __iter__(self) -> Any:
        return iter(self.children)


class Stack(msgspec.Struct, gc=False, **_tagged("Stack")):
    name: str = ""
    enabled: bool = True
    source_range: TimeRange | None = None
    children: list[Track] = []

    def __iter__(self) -> Any:
        return iter(self.children)


class Timeline(msgspec.Struct, gc=False, **_tagged("Timeline")):
    tracks: Stack
    name: str = ""
    global_start_time: RationalTime | None = None

    def video_tracks(self) -> list[Track]:
        return [track for track in self.tracks.children if track.kind == otio.schema.TrackKind.Video]


def read_timeline(data: bytes, timeline_name: str | None = None) -> Timeline | None:
    """The .otio file's content as a Timeline of structs, or None when it must be read through OTIO."""
    if not _usable() or any(otio.hooks.scripts_attached_to(hook) for hook in _READ_HOOKS):
        return None
    try:
        timeline = _decoder().decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None  # not JSON, NaN/Infinity, another shape or schema: OTIO reads it or says why not
    if timeline_name is not None and timeline.name != timeline_name:
        return None
    return timeline


@lru_cache(maxsize=1)
def _usable() -> bool:
    """Whether this OTIO writes the schema versions the structs follow."""
    installed = dict(otio.core.type_version_map())
    return all(installed.get(name) == version for name, version in _VERSIONS.items())


@lru_cache(maxsize=1)
def _decoder() -> msgspec.json.Decoder[Timeline]:
    return msgspec.json.Decoder(Timeline)
