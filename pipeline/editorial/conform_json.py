"""Conforming a stored .otio to .otio as plain JSON, without building OTIO objects.

OTIO's own read and write of a 2-hour cut cost most of a conform. When the stored cut is
an .otio file in the schema versions this OTIO writes, and the output is .otio again, the
only changes are each relinked clip's media reference, source range and
`metadata["backlot"]`, and the timeline's `metadata["backlot"]`; msgspec's JSON codec parses
and writes the rest several times faster than OTIO does. The output is compact UTF-8 JSON (no
indentation) and reads back in OTIO as the OTIO path's output does (tests compare them).

Anything this module is not sure of — an older or unknown schema, an OTIO hook or a target
schema version set in the environment, a clip without the expected fields, JSON that msgspec
does not read back exactly (NaN or infinite numbers, lone surrogates) — raises NotFast (or
makes read_cut or parse_cut return None), and the conform goes through OTIO instead.
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

from pipeline.editorial.frames import exact_rate

# Hooks run by OTIO's adapters around a read or a write: a plain JSON conform would skip them.
_HOOKS = ("post_adapter_read", "post_media_linker", "pre_adapter_write", "post_adapter_write")
_DOWNGRADE_ENV = "OTIO_DEFAULT_TARGET_VERSION_FAMILY_LABEL"  # makes OTIO's writer write older schemas
# OTIO's own references; only ExternalReference has the `target_url` conform keeps as the original media.
_REFERENCES = ("ExternalReference", "ImageSequenceReference", "MissingReference", "GeneratorReference")
_DECODER, _ENCODER = msgspec.json.Decoder(), msgspec.json.Encoder()


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
        # Rejects what it could not write back as read (NaN, Infinity, 1e400): OTIO reads those.
        tree = _DECODER.decode(data)
    except (msgspec.DecodeError, ValueError, RecursionError):
        return None
    if not isinstance(tree, dict) or tree.get("OTIO_SCHEMA") != _schema("Timeline"):
        return None  # a collection of timelines, or something else: OTIO picks
    if timeline_name is not None and tree.get("name") != timeline_name:
        return None
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


class JsonCut:
    """A timeline as the JSON tree of its .otio file, edited in place (the interface of conform's _OtioCut).

    Each clip is written out (the tree keeps its JSON) as soon as it is relinked: see relink.
    """

    def __init__(self, tree: dict[str, Any]):
        self.tree = tree
        self._clip = _schema("Clip")
        self._time, self._span = _schema("RationalTime"), _schema("TimeRange")
        self._sequence, self._movie = _templates()
        self._found: tuple[list[Any], int] = ([None], 0)  # where clip_at found the last clip

    def clip_at(self, path: Sequence[int], name: str) -> dict[str, Any] | None:
        """The clip at `path` (child indices from the tracks), or NotFast when it is not where OTIO would find it."""
        node: Any = self.tree.get("tracks")
        children: Any = None
        try:
            for index in path:
                children = node["children"]
                if children.__class__ is not list or index < 0:
                    raise NotFast
                node = children[index]
        except (TypeError, KeyError, IndexError):
            raise NotFast from None
        if node.__class__ is not dict or node.get("OTIO_SCHEMA") != self._clip or node.get("name") != name:
            raise NotFast
        self._found = children, path[-1]
        return node

    @staticmethod
    def source(clip: dict[str, Any]) -> tuple[Fraction, int, int]:
        """(rate, in point, frames) of the clip's source range, else its media's available range."""
        source = clip.get("source_range") or _active_reference(clip).get("available_range")
        try:
            start, duration = source["start_time"], source["duration"]
            return exact_rate(start["rate"]), round(start["value"]), round(duration["value"])
        except (TypeError, KeyError, ValueError, ArithmeticError):
            raise NotFast from None

    @staticmethod
    def original_media(clip: dict[str, Any]) -> str | None:
        reference = _active_reference(clip)
        kind = str(reference.get("OTIO_SCHEMA")).rpartition(".")[0]
        if kind not in _REFERENCES:
            raise NotFast  # a plugin's reference: OTIO knows what its target_url is
        url = reference.get("target_url") if kind == "ExternalReference" else None
        return str(url) if url else None

    def relink(self, clip: dict[str, Any], new: Any, metadata: dict[str, Any]) -> None:
        """What OTIO's `clip.media_reference = ...` does: replace the active reference (of the clip clip_at
        found last).

        The clip is then written out at once, while it is still in the processor's caches, and the tree
        keeps its JSON: encoding and freeing a cut's worth of objects spread over the heap at the end
        costs several times more.
        """
        children, index = self._found
        if children[index] is not clip:
            raise ValueError("JsonCut.relink takes the clip clip_at found last")
        _active_reference(clip)  # checked before anything changes
        _metadata(clip)["backlot"] = metadata
        clip["media_references"][clip["active_media_reference_key"]] = self._reference(new)
        clip["source_range"] = self._range(new.media_in, new.duration, new.rate)
        children[index] = msgspec.Raw(_ENCODER.encode(clip))

    def set_timeline_metadata(self, metadata: dict[str, Any]) -> None:
        _metadata(self.tree)["backlot"] = metadata

    def write(self, temp: Path, writer: Any, options: dict[str, Any]) -> None:
        """Write the cut; the tree is spent. The file is written from a worker thread (the write lets go
        of the interpreter) while this one frees the tree: hundreds of thousands of objects."""
        data = _ENCODER.encode(self.tree)
        with ThreadPoolExecutor(1, thread_name_prefix="backlot-write") as pool:
            writing = pool.submit(temp.write_bytes, data)
            self.tree = {}
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


def _active_reference(clip: dict[str, Any]) -> dict[str, Any]:
    references, key = clip.get("media_references"), clip.get("active_media_reference_key")
    if not isinstance(references, dict) or not isinstance(references.get(key), dict):
        raise NotFast
    return references[key]


def _metadata(node: dict[str, Any]) -> dict[str, Any]:
    metadata = node.setdefault("metadata", {})
    if not isinstance(metadata, dict):
        raise NotFast
    return metadata


@lru_cache(maxsize=1)
def _templates() -> tuple[dict[str, Any], dict[str, Any]]:
    """Default JSON of an image sequence and a movie reference, as this OTIO serializes them."""
    return (json.loads(otio.schema.ImageSequenceReference().to_json_string()),
            json.loads(otio.schema.ExternalReference().to_json_string()))

