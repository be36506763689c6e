"""Conforming a stored .otio to .otio as JSON, without building OTIO objects.

OTIO's own read and write of a 2-hour cut cost most of a conform. When the stored cut is
an .otio file in the schema versions this OTIO writes, and the output is .otio again, the
only changes are each relinked clip's media reference, source range and
`metadata["backlot"]`, and the timeline's `metadata["backlot"]`. msgspec reads the file into
structs that hold only what conform reads or changes — the timeline, its stacks and tracks,
their children, and of each clip its name, metadata keys and media references — and keeps
every other value as the file's own bytes (`msgspec.Raw`), written back unchanged. Parsing,
writing and freeing the cut then cost a fraction of OTIO's read and write. Relinked clips are
written compact; the untouched parts keep the stored file's layout. The output reads back in
OTIO as the OTIO path's output does (tests compare them).

The structs are made from the fields this OTIO writes for each schema. Anything this module
is not sure of — an older, newer or unknown schema or field, an OTIO hook or a target schema
version set in the environment, a clip without the expected fields, JSON that is not
strictly valid (NaN, Infinity, lone surrogates) — raises NotFast (or makes read_cut or
parse_cut return None), and the conform goes through OTIO instead.
"""

from __future__ import annotations

import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import msgspec
import opentimelineio as otio

from backlot.editorial.frames import exact_rate
from backlot.editorial.otio_json import TimeRange

# Hooks run by OTIO's adapters around a read or a write: a plain JSON conform would skip them.
_HOOKS = ("post_adapter_read", "post_media_linker", "pre_adapter_write", "post_adapter_write")
_DOWNGRADE_ENV = "OTIO_DEFAULT_TARGET_VERSION_FAMILY_LABEL"  # makes OTIO's writer write older schemas
# OTIO's own references; only ExternalReference has the `target_url` conform keeps as the original media.
_REFERENCES = ("ExternalReference", "ImageSequenceReference", "MissingReference", "GeneratorReference")
_ENCODER = msgspec.json.Encoder()


class NotFast(Exception):
    """The stored cut has something only OTIO itself handles right: conform through OTIO."""


def read_cut(path: Path) -> bytes | None:
    """The stored .otio at `path`, or None when it must go through OTIO (see parse_cut)."""
    if os.environ.get(_DOWNGRADE_ENV) or any(otio.hooks.scripts_attached_to(h) for h in _HOOKS):
        return None
    data = path.read_bytes()
    return None if _older_schema().search(data) else data


def parse_cut(data: bytes, timeline_name: str | None) -> "JsonCut | None":
    """The file read by read_cut as a JsonCut, or None when it must go through OTIO."""
    try:
        # Fails on any schema or field the structs lack, and on what is not strict JSON (NaN, Infinity).
        tree = decoder.decode(data) if (decoder := _structs_fit()) is not None else None
    except (msgspec.DecodeError, ValueError, RecursionError):
        return None
    if tree is None or (timeline_name is not None and tree.name != timeline_name):
        return None  # OTIO picks the timeline
    return JsonCut(tree)


@lru_cache(maxsize=1)
def _older_schema() -> re.Pattern[bytes]:
    """Finds a schema OTIO does not know or would upgrade on read (anything but the versions it writes)."""
    current = b"|".join(re.escape(f"{name}.{version}".encode()) for name, version in sorted(_versions().items()))
    return re.compile(rb'"OTIO_SCHEMA"\s*:\s*"(?!(?:' + current + rb')")')


@lru_cache(maxsize=1)
def _versions() -> dict[str, int]:
    # Times are value types, outside OTIO's type registry; their JSON has been at version 1 throughout.
    return dict(otio.core.type_version_map()) | {"RationalTime": 1, "TimeRange": 1, "TimeTransform": 1}


@lru_cache(maxsize=64)
def _schema(name: str) -> str:
    return f"{name}.{_versions()[name]}"


# The timeline schemas as this OTIO writes them, each with exactly the fields OTIO writes for it
# (checked against OTIO in _structs_fit: another OTIO may differ, and then OTIO conforms). A field
# conform does not need is read as msgspec.Raw: its bytes, validated but not built into objects.
# A missing field stays unset and is not written; an unknown one fails the decode.
_STRUCT = {"tag_field": "OTIO_SCHEMA", "forbid_unknown_fields": True, "gc": False}
_Unset = msgspec.UnsetType
_UNSET = msgspec.UNSET


class _WithMetadata(msgspec.Struct, **_STRUCT):  # OTIO's SerializableObjectWithMetadata
    metadata: msgspec.Raw | _Unset = _UNSET
    name: msgspec.Raw | _Unset = _UNSET


class _Item(_WithMetadata):  # OTIO's Item
    source_range: msgspec.Raw | _Unset = _UNSET
    effects: msgspec.Raw | _Unset = _UNSET
    markers: msgspec.Raw | _Unset = _UNSET
    enabled: msgspec.Raw | _Unset = _UNSET
    color: msgspec.Raw | _Unset = _UNSET


class _Clip(_Item, tag=_schema("Clip")):
    # Typed: what conform reads or changes.
    metadata: dict[str, msgspec.Raw] | _Unset = _UNSET  # type: ignore[assignment]
    name: str | _Unset = _UNSET  # type: ignore[assignment]
    media_references: dict[str, msgspec.Raw] | _Unset = _UNSET
    active_media_reference_key: str | _Unset = _UNSET


class _Gap(_Item, tag=_schema("Gap")):
    pass


class _Transition(_WithMetadata, tag=_schema("Transition")):
    in_offset: msgspec.Raw | _Unset = _UNSET
    out_offset: msgspec.Raw | _Unset = _UNSET
    transition_type: msgspec.Raw | _Unset = _UNSET


class _Stack(_Item, tag=_schema("Stack")):
    children: list[_Clip | _Gap | _Transition | _Stack | _Track] | _Unset = _UNSET


class _Track(_Item, tag=_schema("Track")):
    children: list[_Clip | _Gap | _Transition | _Stack | _Track] | _Unset = _UNSET
    kind: msgspec.Raw | _Unset = _UNSET


class _Timeline(_WithMetadata, tag=_schema("Timeline")):
    metadata: dict[str, msgspec.Raw] | _Unset = _UNSET  # type: ignore[assignment]
    name: str | _Unset = _UNSET  # type: ignore[assignment]
    global_start_time: msgspec.Raw | _Unset = _UNSET
    tracks: _Stack | _Unset = _UNSET


@lru_cache(maxsize=1)
def _structs_fit() -> msgspec.json.Decoder | None:
    """The timeline decoder, when each struct has the very fields this OTIO writes for its schema (else None)."""
    for struct in (_Clip, _Gap, _Transition, _Stack, _Track, _Timeline):
        schema = struct.__struct_config__.tag.rpartition(".")[0]
        written = set(json.loads(getattr(otio.schema, schema)().to_json_string())) - {"OTIO_SCHEMA"}
        if written != set(struct.__struct_fields__):
            return None
    return msgspec.json.Decoder(_Timeline)


class JsonCut:
    """A timeline as _structs() read it from its .otio file, edited in place (the interface of conform's _OtioCut).

    Each clip is written out (the tree keeps its JSON) as soon as it is relinked: see relink.
    """

    def __init__(self, tree: Any):
        self.tree = tree
        self._time, self._span = _schema("RationalTime"), _schema("TimeRange")
        self._sequence, self._movie = _templates()
        self._found: tuple[list[Any], int] = ([None], 0)  # where clip_at found the last clip

    def clip_at(self, path: Sequence[int], name: str) -> Any:
        """The clip at `path` (child indices from the tracks), or NotFast when it is not where OTIO would find it."""
        node: Any = self.tree.tracks
        children: Any = None
        try:
            for index in path:
                children = node.children
                if children.__class__ is not list or index < 0:
                    raise NotFast
                node = children[index]
        except (AttributeError, IndexError):
            raise NotFast from None
        if node.__class__ is not _Clip or node.name != name:
            raise NotFast
        self._found = children, path[-1]
        return node

    @staticmethod
    def source(clip: Any) -> tuple[Fraction, int, int]:
        """(rate, in point, frames) of the clip's source range, else its media's available range."""
        try:
            source = _RANGE.decode(clip.source_range) if clip.source_range.__class__ is msgspec.Raw else None
            if source is None:
                source = _active_reference(clip).available_range
            start = source.start_time  # type: ignore[union-attr]
            return exact_rate(start.rate), round(start.value), round(source.duration.value)  # type: ignore[union-attr]
        except (AttributeError, msgspec.DecodeError, ValueError, ArithmeticError):
            raise NotFast from None

    @staticmethod
    def original_media(clip: Any) -> str | None:
        reference = _active_reference(clip)
        kind = reference.OTIO_SCHEMA.rpartition(".")[0]
        if kind not in _REFERENCES:
            raise NotFast  # a plugin's reference: OTIO knows what its target_url is
        return (reference.target_url or None) if kind == "ExternalReference" else None

    def relink(self, clip: Any, new: Any, metadata: dict[str, Any]) -> None:
        """What OTIO's `clip.media_reference = ...` does: replace the active reference (of the clip clip_at
        found last).

        The clip is then written out at once, while it is still in the processor's caches, and the tree
        keeps its JSON: encoding a cut's worth of clips spread over the heap at the end costs more.
        """
        children, index = self._found
        if children[index] is not clip:
            raise ValueError("JsonCut.relink takes the clip clip_at found last")
        references = clip.media_references
        if references.__class__ is not dict or clip.active_media_reference_key not in references:
            raise NotFast  # checked before anything changes
        if clip.metadata is msgspec.UNSET:
            clip.metadata = {}
        clip.metadata["backlot"] = metadata
        references[clip.active_media_reference_key] = self._reference(new)
        clip.source_range = self._range(new.media_in, new.duration, new.rate)
        children[index] = msgspec.Raw(_ENCODER.encode(clip))

    def set_timeline_metadata(self, metadata: dict[str, Any]) -> None:
        if self.tree.metadata is msgspec.UNSET:
            self.tree.metadata = {}
        self.tree.metadata["backlot"] = metadata

    def write(self, temp: Path, writer: Any, options: dict[str, Any]) -> None:
        """Write the cut; the tree is spent. The file is written from a worker thread (the write lets go
        of the interpreter) while this one frees the tree."""
        data = _ENCODER.encode(self.tree)
        with ThreadPoolExecutor(1, thread_name_prefix="backlot-write") as pool:
            writing = pool.submit(temp.write_bytes, data)
            self.tree = None
            writing.result()

    def _reference(self, new: Any) -> dict[str, Any]:
        """The JSON OTIO writes for conform's new media reference (the template's other fields never change:
        only its metadata needs a dict of its own)."""
        available = self._range(new.available_start, new.available_count, new.rate)
        if new.kind == "image_sequence":
            return {**self._sequence, "metadata": {}, "name": new.name, "available_range": available,
                    "target_url_base": new.url, "name_prefix": new.prefix, "name_suffix": new.suffix,
                    "start_frame": new.available_start, "frame_step": 1, "rate": new.rate,
                    "frame_zero_padding": new.padding}
        return {**self._movie, "metadata": {}, "name": new.name, "available_range": available, "target_url": new.url}

    def _range(self, start: int, duration: int, rate: float) -> dict[str, Any]:
        time = self._time
        return {"OTIO_SCHEMA": self._span, "duration": {"OTIO_SCHEMA": time, "rate": rate, "value": float(duration)},
                "start_time": {"OTIO_SCHEMA": time, "rate": rate, "value": float(start)}}


# What conform reads of a clip's source range and active media reference (kept as their JSON bytes):
# typed (the import's time structs), so that reading them builds no dicts. Other fields are skipped.
class _Reference(msgspec.Struct, gc=False):
    OTIO_SCHEMA: str
    target_url: str | None = None
    available_range: TimeRange | None = None


_RANGE = msgspec.json.Decoder(TimeRange | None)
_REFERENCE = msgspec.json.Decoder(_Reference)


def _active_reference(clip: Any) -> _Reference:
    references, key = clip.media_references, clip.active_media_reference_key
    if references.__class__ is not dict or key not in references:
        raise NotFast
    try:
        return _REFERENCE.decode(references[key])
    except msgspec.DecodeError:
        raise NotFast from None


@lru_cache(maxsize=1)
def _templates() -> tuple[dict[str, Any], dict[str, Any]]:
    """Default JSON of an image sequence and a movie reference, as this OTIO serializes them."""
    return (json.loads(otio.schema.ImageSequenceReference().to_json_string()),
            json.loads(otio.schema.ExternalReference().to_json_string()))

