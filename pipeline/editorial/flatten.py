"""From an OTIO timeline to the cut: the clips on screen, in record order, in integer frames.

The walk places every clip of every enabled video track in absolute record frames (the
timeline's start timecode included), through nested stacks and tracks and their trims.
Which clips make the cut is a policy:

- `visible` (default): what a viewer sees. Later tracks composite over earlier ones (V2
  over V1; inside a nested stack, its later tracks over its earlier ones); gaps are
  transparent. A clip partly covered by one above it contributes the visible parts, so
  a cutaway inserted over a long shot gives that shot twice.
- `all`: every enabled clip on every enabled video track.
- a track name or 1-based video track number: that track alone (what is visible in it).

Transitions take no time on a track; they make the clips on either side need extra media
(`Track.handles_of_child` semantics): the clip before needs the transition's `out_offset`
after its cut, the clip after needs its `in_offset` before.

EDL readers mark the record start by giving the top-level track a negative source start
(`-record_in`); that is read as the record offset, not as a trim.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial
from operator import attrgetter
from typing import Any, Callable, Iterator

import opentimelineio as otio

from backlot.editorial import otio_json, otio_values
from backlot.editorial.errors import CutInputError, Where
from backlot.editorial.frames import _RATE_OF_FLOAT, NORMAL_SPEED, Retime, exact_rate, to_frames, used_source_range
from backlot.editorial.reader import ReadResult
from backlot.errors import article

POLICY_VISIBLE = "visible"
POLICY_ALL = "all"
MAX_FRAME = 2**31 // 2  # frames are stored as 32-bit integers, with room for shot-frame offsets
NO_VIDEO = "has no video: no video track in the timeline (audio only?)"


@dataclass(slots=True)
class CutClip:
    """One clip (or the visible part of one) in the cut. Record frames at the cut's rate."""

    position: int  # editorial order in this cut, from 1
    path: tuple[int, ...]  # child indices from timeline.tracks down to the OTIO clip
    track: str  # the top-level video track's name (V1, V2... when unnamed)
    track_index: int  # 1-based among the timeline's video tracks, bottom first
    name: str
    reel: str | None
    media_url: str | None
    record_in: int  # absolute record frame (timecode offset included)
    record_out_excl: int
    source_rate: Fraction
    clip_source_in: int  # the OTIO clip's own in point, source frames
    source_in: int  # first source frame this piece shows (retime applied)
    source_out_excl: int  # one past the last source frame it shows
    retime: Retime
    transition_in: int  # record frames of a transition before the cut (media needed before)
    transition_out: int  # record frames of a transition after it (media needed after)
    needed_in: int  # source frames needed, transitions included
    needed_out_excl: int
    where: Where
    clip: Any = field(compare=False, repr=False)  # the OTIO clip (or otio_json's Clip struct)

    @property
    def duration(self) -> int:
        return self.record_out_excl - self.record_in

    @property
    def source_identity(self) -> str:
        """What was cut in: the reel, else the media, else the clip name (a new take changes it)."""
        return self.reel or self.media_url or self.name


@dataclass(slots=True)
class _Placed:
    """An OTIO clip placed in record frames, before deciding what of it is visible."""

    path: tuple[int, ...]
    layer: tuple[int, ...]
    track: str
    track_index: int
    ordinal: int | None  # index among its top-level track's clips, for EDL event lookup
    clip: Any
    record_in: int
    duration: int
    source_rate: Fraction
    source_in: int
    retime: Retime
    transition_in: int = 0
    transition_out: int = 0


def flatten_cut(read: ReadResult, policy: str = POLICY_VISIBLE) -> list[CutClip]:
    """The clips of the cut in record order, with their record and source frames."""
    if not read.timeline.video_tracks():  # an OTIO timeline, or otio_json's structs for a plain .otio
        raise CutInputError(Where(read.label), NO_VIDEO)
    placed = list(_place_clips(read))
    chosen = _choose(placed, policy, read)
    if not chosen:
        raise CutInputError(Where(read.label), "has no video clips: nothing to import "
                                               "(check that the video tracks are enabled and not empty)")
    upper_first = {p.layer: tuple(-x for x in p.layer) for p, _, _ in chosen}  # a few layers, thousands of pieces
    chosen.sort(key=lambda p: (p[1], upper_first[p[0].layer], p[0].path))
    names: dict[tuple[int, ...], tuple[str, str | None, str | None, Where]] = {}  # per OTIO clip, for its pieces
    return [_cut_clip(position, placed_clip, start, end, read, names)
            for position, (placed_clip, start, end) in enumerate(chosen, start=1)]


def _cut_clip(position: int, p: _Placed, start: int, end: int, read: ReadResult,
              names: dict[tuple[int, ...], tuple[str, str | None, str | None, Where]]) -> CutClip:
    k0, k1 = start - p.record_in, end - p.record_in
    head = p.transition_in if k0 == 0 else 0
    tail = p.transition_out if k1 == p.duration else 0
    if p.retime is NORMAL_SPEED:  # most clips: plain offsets
        shown, needed = (p.source_in + k0, p.source_in + k1), (p.source_in + k0 - head, p.source_in + k1 + tail)
    else:
        shown = used_source_range(p.source_in, k0, k1, p.retime)
        needed = used_source_range(p.source_in, k0 - head, k1 + tail, p.retime)
    known = names.get(p.path)
    if known is None:
        name = p.clip.name
        where = read.where(name, p.ordinal) if p.track_index == 1 else Where(read.label, clip=name)
        known = names[p.path] = (name, _reel(p.clip), _media_url(p.clip), where)
    name, reel, url, where = known
    return CutClip(position, p.path, p.track, p.track_index, name, reel, url, start, end, p.source_rate, p.source_in,
                   shown[0], shown[1], p.retime, head, tail, needed[0], needed[1], where, p.clip)


# -- placing clips -----------------------------------------------------------------------------


def _place_clips(read: ReadResult) -> Iterator[_Placed]:
    timeline, rate = read.timeline, read.rate
    start = 0
    if timeline.global_start_time is not None:
        start = _frames(timeline.global_start_time, rate, partial(_where, read), "the timeline's start time")
    stack = timeline.tracks
    base, window = _enter(stack, start, (None, None), rate, partial(_where, read), allow_offset=False)
    video_index = 0
    for index, track in enumerate(stack):
        if _kind(track) is not _TRACK or track.kind != otio.schema.TrackKind.Video:
            continue
        video_index += 1
        if not track.enabled:
            continue
        name = track.name or f"V{video_index}"
        track_base, track_window = _enter(track, base, window, rate, partial(_where, read), allow_offset=True)
        yield from _walk_track(track, track_base, track_window, (video_index,), (index,), name, video_index,
                               read, top=True)


def _enter(composition: Any, start: int, window: tuple[int | None, int | None], rate: Fraction,
           where: "_LazyWhere", allow_offset: bool) -> tuple[int, tuple[int | None, int | None]]:
    """(absolute frame of the composition's internal time 0, visible window) for one placed at `start`."""
    source_range = composition.source_range
    if source_range is None:
        return start, window
    trim_start = _frames(source_range.start_time, rate, where, "a track's start")
    if trim_start < 0 and allow_offset:
        return start - trim_start, window  # an EDL's record offset, not a trim
    duration = _frames(source_range.duration, rate, where, "a track's duration")
    return start - trim_start, _intersect(window, (start, start + duration))


def _walk_track(track: Any, base: int, window: tuple[int | None, int | None], layer: tuple[int, ...],
                path: tuple[int, ...], name: str, video_index: int, read: ReadResult,
                top: bool = False) -> Iterator[_Placed]:
    position = 0
    previous: _Placed | None = None
    pending_in = 0
    ordinal = 0
    rate = read.rate
    lo, hi = window
    for index, child in enumerate(track):
        where = partial(_where, read, child, ordinal if top else None)  # built in C: one per child adds up
        kind = _kind(child)
        if kind is _TRANSITION:
            in_offset = _frames(child.in_offset, rate, where, "a transition's in offset")
            out_offset = _frames(child.out_offset, rate, where, "a transition's out offset")
            if previous is not None:
                previous.transition_out = max(previous.transition_out, out_offset)
            pending_in = max(0, in_offset)
            continue
        duration = _item_duration(child, rate, where)
        start = base + position
        position += duration
        if kind is _CLIP:
            placed = _place_clip(child, start, duration, layer, path + (index,), name, video_index,
                                 ordinal if top else None, read, where)
            ordinal += 1
            placed.transition_in = pending_in
            pending_in = 0
            previous = placed
            if child.enabled and (hi is None or start < hi) and (lo is None or start + duration > lo):  # overlaps
                yield _clip_in_window(placed, window)
            continue
        pending_in = 0
        previous = None
        if (kind is _TRACK or kind is _STACK) and child.enabled:
            inner_base, inner_window = _enter(child, start, _intersect(window, (start, start + duration)),
                                              read.rate, where, allow_offset=False)
            if kind is _TRACK:
                yield from _walk_track(child, inner_base, inner_window, layer, path + (index,), name, video_index,
                                       read)
            else:
                yield from _walk_stack(child, inner_base, inner_window, layer, path + (index,), name, video_index,
                                       read)


def _walk_stack(stack: Any, base: int, window: tuple[int | None, int | None], layer: tuple[int, ...],
                path: tuple[int, ...], name: str, video_index: int, read: ReadResult) -> Iterator[_Placed]:
    """A nested stack: its children start together; later ones are on top."""
    for index, child in enumerate(stack):
        where = partial(_where, read, child, None)
        if not getattr(child, "enabled", True):
            continue
        kind = _kind(child)
        if kind is _TRACK:
            if child.kind != otio.schema.TrackKind.Video:
                continue
            inner_base, inner_window = _enter(child, base, window, read.rate, where, allow_offset=False)
            yield from _walk_track(child, inner_base, inner_window, layer + (index,), path + (index,), name,
                                   video_index, read)
        elif kind is _STACK:
            inner_base, inner_window = _enter(child, base, window, read.rate, where, allow_offset=False)
            yield from _walk_stack(child, inner_base, inner_window, layer + (index,), path + (index,), name,
                                   video_index, read)
        elif kind is _CLIP:
            duration = _item_duration(child, read.rate, where)
            placed = _place_clip(child, base, duration, layer + (index,), path + (index,), name, video_index,
                                 None, read, where)
            if _overlaps((base, base + duration), window):
                yield _clip_in_window(placed, window)


def _place_clip(clip: Any, start: int, duration: int, layer: tuple[int, ...], path: tuple[int, ...], name: str,
                video_index: int, ordinal: int | None, read: ReadResult, where: "_LazyWhere") -> _Placed:
    try:
        source_range = clip.trimmed_range()
        source_rate = exact_rate(source_range.start_time.rate)
    except Exception:  # noqa: BLE001 - no range on the clip nor its media, or a zero rate
        raise CutInputError(where(), "the clip has no usable source range") from None
    source_in = _frames(source_range.start_time, source_rate, where, "the source in")
    source_frames = _frames(source_range.duration, source_rate, where, "the source duration")
    retime = clip_retime(clip, source_frames, duration)
    return _Placed(path, layer, name, video_index, ordinal, clip, start, duration, source_rate, source_in, retime)


def _clip_in_window(placed: _Placed, window: tuple[int | None, int | None]) -> _Placed:
    """The clip, trimmed to what its enclosing compositions show of it (it overlaps the window)."""
    lo, hi = window
    start, end = placed.record_in, placed.record_in + placed.duration
    if (lo is None or lo <= start) and (hi is None or end <= hi):
        return placed
    cut_start = max(start, lo if lo is not None else start)
    cut_end = min(end, hi if hi is not None else end)
    skipped = cut_start - start
    retime = placed.retime
    if retime is NORMAL_SPEED:
        source_in = placed.source_in + skipped
    else:
        source_in = placed.source_in + (0 if retime.freeze else _floor(skipped * retime.speed))
    return _Placed(placed.path, placed.layer, placed.track, placed.track_index, placed.ordinal, placed.clip,
                   cut_start, cut_end - cut_start, placed.source_rate, source_in, retime,
                   placed.transition_in if skipped == 0 else 0, placed.transition_out if cut_end == end else 0)


def clip_retime(clip: Any, source_frames: int, record_frames: int) -> Retime:
    """A clip's time effects as a Retime, for `source_frames` of source range shown over `record_frames`."""
    effects = clip.effects
    if not effects and source_frames == record_frames:
        return NORMAL_SPEED
    scalar = Fraction(1)
    freeze = False
    for effect in otio_values.elements(effects):
        kind = _kind(effect)
        if kind is _FREEZE:
            freeze = True
        elif kind is _WARP:
            scalar *= Fraction(effect.time_scalar).limit_denominator(10000)
    if freeze or scalar == 0:
        return Retime(Fraction(0), True)
    # Source frames per record frame: the warp, times any rate difference between media and cut.
    return Retime(scalar * Fraction(source_frames, record_frames), False)


def _item_duration(item: Any, rate: Fraction, where: "_LazyWhere") -> int:
    try:
        duration = item.duration()
    except Exception:  # noqa: BLE001 - an item without any range
        raise CutInputError(where(), "has no duration (no source range and no media range)") from None
    frames = _frames(duration, rate, where, "the duration")
    if frames < 0 or (frames == 0 and _kind(item) is _CLIP):
        what = "the clip" if _kind(item) is _CLIP else article(type(item).__name__.lower())
        raise CutInputError(where(), f"{what} has a {'zero' if frames == 0 else 'negative'} duration "
                                     f"({frames} frames): fix its source/record timecodes in the edit")
    return frames


def _frames(time: Any, rate: Fraction, where: "_LazyWhere", what: str) -> int:
    value = time.value
    if value.__class__ is float and _RATE_OF_FLOAT.get(time.rate) is rate and value.is_integer() \
            and -MAX_FRAME <= value <= MAX_FRAME:
        return int(value)  # nearly every time of a cut: whole frames at the rate wanted (to_frames' first case)
    try:
        frames = to_frames(time.value, time.rate, rate)
    except Exception:  # noqa: BLE001 - a NaN/inf/zero-rate time from a broken file
        raise CutInputError(where(), f"{what} is not a valid time ({time})") from None
    if abs(frames) > MAX_FRAME:
        raise CutInputError(where(), f"{what} is out of range ({time}: over 24 days of frames)")
    return frames


def _where(read: ReadResult, item: Any = None, ordinal: int | None = None) -> Where:
    """Where an item is (the walk passes it on as a partial, worked out only when there is an error to report)."""
    name = getattr(item, "name", None) if item is not None else None
    return read.where(name, ordinal)


_LazyWhere = Callable[[], Where]


# -- what is visible ---------------------------------------------------------------------------


def _choose(placed: list[_Placed], policy: str, read: ReadResult) -> list[tuple[_Placed, int, int]]:
    if policy == POLICY_ALL:
        return [(p, p.record_in, p.record_in + p.duration) for p in placed]
    if policy != POLICY_VISIBLE:
        placed = _one_track(placed, policy, read)
    coverage = _Coverage()
    chosen = []
    for p in sorted(placed, key=attrgetter("layer"), reverse=True):
        end = p.record_in + p.duration
        for a, b in coverage.uncovered(p.record_in, end):
            chosen.append((p, a, b))
        coverage.add(p.record_in, end)
    return [(_piece(p, a, b), a, b) for p, a, b in chosen]


def _piece(p: _Placed, a: int, b: int) -> _Placed:
    """`p` restricted to record frames [a, b), keeping its transitions only at its own ends."""
    if a == p.record_in and b == p.record_in + p.duration:
        return p
    return _clip_in_window(p, (a, b))


def _one_track(placed: list[_Placed], policy: str, read: ReadResult) -> list[_Placed]:
    names = {p.track for p in placed} | {str(p.track_index) for p in placed}
    chosen = [p for p in placed if policy in (p.track, str(p.track_index))]
    if not chosen:
        raise CutInputError(Where(read.label), f"has no video track {policy!r} with clips "
                                               f"(tracks: {', '.join(sorted(names)) or 'none'})")
    return chosen


class _Coverage:
    """Disjoint half-open frame intervals, for subtracting what upper tracks already cover."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []

    def uncovered(self, a: int, b: int) -> list[tuple[int, int]]:
        parts = []
        cursor = a
        i = bisect_right(self.ends, a)
        while i < len(self.starts) and self.starts[i] < b:
            if self.starts[i] > cursor:
                parts.append((cursor, self.starts[i]))
            cursor = max(cursor, self.ends[i])
            i += 1
        if cursor < b:
            parts.append((cursor, b))
        return parts

    def add(self, a: int, b: int) -> None:
        i = bisect_left(self.ends, a)
        j = bisect_right(self.starts, b)
        if i < j:
            a, b = min(a, self.starts[i]), max(b, self.ends[j - 1])
        self.starts[i:j] = [a]
        self.ends[i:j] = [b]


# -- small helpers -----------------------------------------------------------------------------

_CLIP, _GAP, _TRANSITION, _TRACK, _STACK, _FREEZE, _WARP, _OTHER = (
    "clip", "gap", "transition", "track", "stack", "freeze", "warp", "other")
# OTIO's classes (checked in this order: FreezeFrame is a LinearTimeWarp) and otio_json's structs.
_OTIO_KINDS = ((otio.schema.Clip, _CLIP), (otio.schema.Gap, _GAP), (otio.schema.Transition, _TRANSITION),
               (otio.schema.Track, _TRACK), (otio.schema.Stack, _STACK), (otio.schema.FreezeFrame, _FREEZE),
               (otio.schema.LinearTimeWarp, _WARP))
_KINDS: dict[type, str] = {otio_json.Clip: _CLIP, otio_json.Gap: _GAP, otio_json.Transition: _TRANSITION,
                           otio_json.Track: _TRACK, otio_json.Stack: _STACK, otio_json.FreezeFrame: _FREEZE,
                           otio_json.LinearTimeWarp: _WARP}


def _kind(item: Any) -> str:
    """What an item of the timeline is, for OTIO objects and otio_json structs alike (one dict lookup)."""
    kind = _KINDS.get(type(item))
    if kind is None:
        kind = next((k for cls, k in _OTIO_KINDS if isinstance(item, cls)), _OTHER)
        _KINDS[type(item)] = kind
    return kind



def _intersect(a: tuple[int | None, int | None], b: tuple[int, int]) -> tuple[int | None, int | None]:
    lo = b[0] if a[0] is None else max(a[0], b[0])
    hi = b[1] if a[1] is None else min(a[1], b[1])
    return lo, hi


def _overlaps(span: tuple[int, int], window: tuple[int | None, int | None]) -> bool:
    lo, hi = window
    return (hi is None or span[0] < hi) and (lo is None or span[1] > lo)


def _floor(value: Fraction) -> int:
    return value.numerator // value.denominator


def _reel(clip: Any) -> str | None:
    reel = otio_values.get(otio_values.get(clip.metadata, "cmx_3600"), "reel")
    return str(reel) if reel else None


def _media_url(clip: Any) -> str | None:
    ref = clip.media_reference
    url = getattr(ref, "target_url", None)
    if url:
        return str(url)
    base = getattr(ref, "target_url_base", None)
    if base:
        return f"{base}{ref.name_prefix}#{ref.name_suffix}"
    return None
