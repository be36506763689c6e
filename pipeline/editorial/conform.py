"""Conform: write a cut revision back with each clip pointing at its shot's chosen version.

The revision's original file (kept in the store at import) is read again with the same
reader options, so everything the editor made — tracks, gaps, transitions, markers,
effects, metadata — is kept. Each clip mapped to a shot that has a version with media
gets a new media reference (an image sequence, else a movie), its source range moved to
that media's frames (same duration, retimes untouched), and `metadata["backlot"]` naming
the version. Clips without a version keep their media and are reported. The output is
written to a temporary name and renamed into place, so a failed write leaves no file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple, Sequence

import opentimelineio as otio
from sqlalchemy.orm import Session

from backlot.config import load_settings
from backlot.db.cuts import CutRevision
from backlot.editorial import conform_json
from backlot.editorial.bulk import gc_paused
from backlot.editorial.errors import CutInputError, Where, file_label
from backlot.editorial.frames import exact_rate, same_rate
from backlot.editorial.reader import ReadOptions, read_cut_file
from backlot.editorial.revisions import find_revision
from backlot.editorial.shot_versions import (Media, ShotVersion, current_versions_by_code_query, shot_frames_held,
                                              shot_versions_of)
from backlot.editorial.sql import fetch_custom_plan_sent, fetch_rows
from backlot.errors import InvalidInputError
from backlot.storage import Store
from backlot.tracker.choices import parse_policy
from backlot.tracker.projects import find_project
from backlot.tracker.records import _Record

# Writers that fail on image sequence references (fcp_xml 1.0 leaves its URL unset): point them at movies.
_NO_SEQUENCE_WRITERS = {"fcp_xml"}
RELINKED, NO_VERSION, UNMATCHED, NO_MEDIA, NOT_COVERED = "relinked", "no_version", "unmatched", "no_media", "not_covered"


@dataclass  # not frozen: a conform makes one per clip, and frozen fields are set the slow way
class ConformedClip(_Record):
    position: int  # the first cut item of the clip
    clip: str
    shot: str | None
    status: str  # relinked | not_covered (the version lacks frames the clip needs) | no_version | unmatched | no_media
    version: str | None = None
    version_id: int | None = None
    media: str | None = None
    source_in: int | None = None  # the clip's new in point, in the version's media frames


@dataclass(frozen=True)
class ConformResult(_Record):
    project: str
    revision: int
    policy: str
    output: str
    adapter: str
    clips: list[ConformedClip] = field(default_factory=list)

    @property
    def relinked(self) -> int:
        return sum(1 for c in self.clips if c.status == RELINKED)

    @property
    def kept(self) -> list[ConformedClip]:
        """Clips that keep their original media, and why."""
        return [c for c in self.clips if c.status != RELINKED]


class _ClipPlan(NamedTuple):
    """What conform needs of one OTIO clip: its first item's shot and frame offset."""

    position: int
    path: list[int]
    clip_name: str
    shot_code: str | None
    delta: int | None  # shot frame minus source frame
    need_first: int  # shot frames the clip needs, over all its items (transitions included)
    need_last: int


def conform_cut(session: Session, project: str, output: str | Path, *, policy: str = "approved",
                revision: int | None = None, adapter: str | None = None, media: str = "auto",
                store: Store | None = None, writer_options: dict[str, Any] | None = None) -> ConformResult:
    """Write revision `revision` (default: the latest) to `output`, relinked to the `policy` versions.

    `media`: `sequence` (image sequences), `movie`, or `auto` (sequences, except for writers
    that cannot write them, such as FCP 7 XML).
    """
    state = parse_policy(policy).value
    proj = find_project(session, project)
    rev = find_revision(session, proj, revision)
    output = Path(output)
    writer = _find_writer(output, adapter)
    store = store or Store(load_settings().store_url)
    prefer = _media_choice(media, writer)
    rate = Fraction(rev.fps_num, rev.fps_den)
    summary = {"project": proj.code, "revision": rev.number, "policy": state}
    job = (rate, store, rev, prefer, summary, output, writer)
    with _original_file(store, rev) as original:
        # The JSON tree holds no cycles: the collector would only walk it again and again.
        with gc_paused():
            plans, versions, clips = _conform_fast(session, state, original, writer_options, *job)
        if clips is None:
            read = read_cut_file(original, ReadOptions.from_dict(rev.reader_options), default_rate=rate)
    if clips is None:
        clips = _conform(_OtioCut(read.timeline), plans, versions, *job, writer_options or {})
    return ConformResult(proj.code, rev.number, state, str(output), writer.name, clips)


def _conform_fast(session: Session, policy: str, original: Path, writer_options: dict[str, Any] | None,
                  rate: Fraction, store: Store, rev: CutRevision, prefer: str, summary: dict[str, Any], output: Path,
                  writer: Any) -> tuple[list[_ClipPlan], dict[str, ShotVersion], list[ConformedClip] | None]:
    """The plans and versions, and the conform done as plain JSON (see _fast_cut), or None for OTIO to do it."""
    fast = rev.adapter == "otio_json" and writer.name == "otio_json" and not writer_options
    with ThreadPoolExecutor(max_workers=1) as pool:
        # The file is read and parsed in another thread while this one queries the database.
        queried = threading.Event()
        reading = pool.submit(_fast_cut, original, ReadOptions.from_dict(rev.reader_options).timeline,
                              queried) if fast else None
        try:
            plans = _clip_plans(session, rev)
            versions = _current_versions(session, rev.project_id, plans, policy, prefer == "movie", queried.set)
        finally:
            queried.set()  # nor leave the reader waiting for queries that failed
        cut = reading.result() if reading else None
    if cut is None:
        return plans, versions, None
    try:
        return plans, versions, _conform(cut, plans, versions, rate, store, rev, prefer, summary, output, writer, {})
    except conform_json.NotFast:
        return plans, versions, None  # something only OTIO itself reads right: conform through it


def _fast_cut(original: Path, timeline: str | None, queried: threading.Event) -> conform_json.JsonCut | None:
    """The stored .otio as plain JSON, when it goes back to .otio unchanged but for the relinks.

    OTIO's own read and write cost most of a conform; msgspec's JSON codec does the same work
    several times faster, and the output reads back in OTIO as the OTIO path's does. The parse
    holds the interpreter for tens of milliseconds: it waits until the versions' query is with
    the server (`queried`), so that the server works on it meanwhile.
    """
    data = conform_json.read_cut(original)
    queried.wait()
    return conform_json.parse_cut(data, timeline) if data is not None else None


def _conform(cut: Any, plans: list[_ClipPlan], versions: dict[str, ShotVersion], rate: Fraction, store: Store,
             rev: CutRevision, prefer: str, summary: dict[str, Any], output: Path, writer: Any,
             options: dict[str, Any]) -> list[ConformedClip]:
    relink = _Relinker(cut, rate, store, rev, prefer)
    clips = [relink(plan, versions.get(plan.shot_code)) for plan in plans]
    cut.set_timeline_metadata({**summary, "relinked": sum(1 for c in clips if c.status == RELINKED)})
    _write(lambda temp: cut.write(temp, writer, options), output, writer)
    return clips


class _OtioCut:
    """The stored cut read through OTIO's adapters: any format in, any format out."""

    def __init__(self, timeline: Any):
        self.timeline = timeline

    def clip_at(self, path: Sequence[int], name: str) -> Any | None:
        node = self.timeline.tracks
        try:
            for index in path:
                node = node[index]
        except IndexError:
            return None
        return node if isinstance(node, otio.schema.Clip) and node.name == name else None

    @staticmethod
    def source(clip: Any) -> tuple[Fraction, int, int]:
        return _source_of(clip)

    @staticmethod
    def original_media(clip: Any) -> str | None:
        return original_media(clip)

    @staticmethod
    def relink(clip: Any, new: NewMedia, metadata: dict[str, Any]) -> None:
        _apply(clip, new)
        clip.metadata["backlot"] = metadata

    def set_timeline_metadata(self, metadata: dict[str, Any]) -> None:
        self.timeline.metadata["backlot"] = metadata

    def write(self, temp: Path, writer: Any, options: dict[str, Any]) -> None:
        otio.adapters.write_to_file(self.timeline, str(temp), adapter_name=writer.name, **options)


def _current_versions(session: Session, project_id: int, plans: list[_ClipPlan], policy: str, movies: bool,
                      sent: Callable[[], object]) -> dict[str, ShotVersion]:
    """current_shot_versions (with media) by shot code, calling `sent` once the query is with the server.

    The query finds the shots by their codes: that lookup then runs on the server while the
    file is parsed here, not before.
    """
    codes = list({p.shot_code: None for p in plans if p.shot_code is not None})
    if not codes:
        return {}
    rows = fetch_custom_plan_sent(session, *current_versions_by_code_query(project_id, codes, policy, movies=movies),
                                  sent)
    return {v.shot: v for v in shot_versions_of(rows)}


def _clip_plans(session: Session, rev: CutRevision) -> list[_ClipPlan]:
    """Per OTIO clip, from its items (pieces): the first's shot and offset, the shot frames all need.

    The shots themselves are found by the versions' query.
    """
    rows = fetch_rows(session, """
        SELECT position, string_to_array(otio_path, '.')::int[], clip_name, shot_code, delta, need_first, need_last
        FROM (SELECT DISTINCT ON (ci.otio_path) ci.position, ci.otio_path, ci.clip_name, ci.shot_code,
                     ci.cut_in - ci.needed_in AS delta, coalesce(min(ci.cut_in) OVER clip, 0) AS need_first,
                     coalesce(max(ci.cut_out_incl) FILTER (WHERE ci.cut_in IS NOT NULL) OVER clip, -1) AS need_last
              FROM cut_items ci WHERE ci.revision_id = %(revision_id)s
              WINDOW clip AS (PARTITION BY ci.otio_path ORDER BY ci.position
                              ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
              ORDER BY ci.otio_path, ci.position) first_items
        ORDER BY position
    """, {"revision_id": rev.id})
    return list(map(_ClipPlan._make, rows))


class _Relinker:
    """Relinks the clips of one conform, as planned, or says why not (what every clip shares is worked out once)."""

    def __init__(self, cut: Any, rate: Fraction, store: Store, rev: CutRevision, prefer: str):
        self.cut, self.rate, self.fps, self.store, self.prefer = cut, rate, float(rate), store, prefer
        self.revision, self.source_file = rev.number, rev.source_file

    def __call__(self, plan: _ClipPlan, version: ShotVersion | None) -> ConformedClip:
        """Relink the clip of `cut` (an _OtioCut or a conform_json.JsonCut) that `plan` is for."""
        cut = self.cut
        clip = cut.clip_at(plan.path, plan.clip_name)
        if clip is None:
            raise InvalidInputError(f"revision {self.revision}'s stored file {self.source_file} no longer reads as it "
                                    f"did at import (clip {plan.clip_name!r} is not at "
                                    f"{'.'.join(map(str, plan.path))}): re-import the file with the installed OTIO "
                                    "adapters")
        if plan.shot_code is None or plan.delta is None:
            return ConformedClip(plan.position, plan.clip_name, None, UNMATCHED)
        if version is None:
            return ConformedClip(plan.position, plan.clip_name, plan.shot_code, NO_VERSION)
        media = pick_media(version, self.prefer)
        if media is None:
            return ConformedClip(plan.position, plan.clip_name, plan.shot_code, NO_MEDIA, version.ref,
                                 version.version_id)
        if not shot_frames_held(version).covers(plan.need_first, plan.need_last):
            # Pointing at frames the version does not have would make a cut no player can show.
            return ConformedClip(plan.position, plan.clip_name, plan.shot_code, NOT_COVERED, version.ref,
                                 version.version_id)
        original = cut.original_media(clip)
        source = cut.source(clip)
        new = new_media(version, media, plan.delta, self.rate, self.store, source, self.fps)
        metadata = {"shot": plan.shot_code, "version": version.ref, "version_id": version.version_id,
                    "shot_in": source[1] + plan.delta, "revision": self.revision}
        if original:
            metadata["original_media"] = original
        cut.relink(clip, new, metadata)
        return ConformedClip(plan.position, plan.clip_name, plan.shot_code, RELINKED, version.ref,
                             version.version_id, new.label, new.media_in)


def pick_media(version: ShotVersion, prefer: str) -> Media | None:
    """The version's movie (prefer="movie") or image sequence (else), falling back to the other."""
    if prefer == "movie":
        return version.movie or version.sequence
    return version.sequence or version.movie


class NewMedia(NamedTuple):
    """A relinked clip's media reference and source range, whichever way the cut is written."""

    kind: str  # image_sequence | movie
    url: str  # the movie's URL, or the image sequence's folder URL (ending in "/")
    name: str  # the version's ref
    rate: float
    media_in: int  # the clip's new in point, in the media's frames
    duration: int  # the clip's length, unchanged in time
    available_start: int
    available_count: int
    prefix: str = ""  # image sequence: file name around the frame number, and its padding
    suffix: str = ""
    padding: int = 0

    @property
    def label(self) -> str:
        """The URL reported for the clip (an image sequence's with `#` for the frame number)."""
        return f"{self.url}{self.prefix}#{self.suffix}" if self.kind == "image_sequence" else self.url


def new_media(version: ShotVersion, media: Media, delta: int, rate: Fraction, store: Store,
              source: tuple[Fraction, int, int], fps: float | None = None) -> NewMedia:
    """Where a clip whose source is (rate, in, frames) points once relinked to `media` of the version.

    `delta` turns the clip's source frames into shot frames; the media holds shot frames
    from `frame_range[0]` (image files numbered from their first file's number). `fps` is
    float(rate), for callers that relink many clips.
    """
    source_rate, source_in, frames = source
    fps = float(rate) if fps is None else fps
    media_in = source_in + delta + media_offset(version, media)
    # The same length in time, so nothing after the clip moves (equal frames when the rates agree).
    duration = frames if same_rate(source_rate, rate) else round(frames * rate / source_rate)
    if media.kind == "image_sequence":
        return NewMedia("image_sequence", media_url(store, version, media.folder) + "/", version.ref, fps,
                        media_in, duration, media.start_frame, media.last_frame - media.start_frame + 1,
                        media.prefix, media.suffix, media.padding)
    first, last = version.coverage.first, version.coverage.last
    assert first is not None and last is not None
    return NewMedia("movie", media_url(store, version, media.file), version.ref, fps, media_in, duration, 0,
                    last - first + 1)


def relink_clip(clip: Any, version: ShotVersion, media: Media, delta: int, rate: Fraction, store: Store) -> int:
    """Point the OTIO `clip` at `media` of the version; its in point moves to the media's frame. Returns that frame."""
    new = new_media(version, media, delta, rate, store, _source_of(clip))
    _apply(clip, new)
    return new.media_in


def _source_of(clip: Any) -> tuple[Fraction, int, int]:
    """(rate, in point, frames) of an OTIO clip's source range."""
    source = clip.source_range if clip.source_range is not None else clip.trimmed_range()
    return exact_rate(source.start_time.rate), round(source.start_time.value), round(source.duration.value)


def _apply(clip: Any, new: NewMedia) -> None:
    def rt(value: int) -> Any:
        return otio.opentime.RationalTime(value, new.rate)

    available = otio.opentime.TimeRange(rt(new.available_start), rt(new.available_count))
    if new.kind == "image_sequence":
        reference = otio.schema.ImageSequenceReference(
            target_url_base=new.url, name_prefix=new.prefix, name_suffix=new.suffix, start_frame=new.available_start,
            frame_step=1, rate=new.rate, frame_zero_padding=new.padding, available_range=available)
    else:
        reference = otio.schema.ExternalReference(target_url=new.url, available_range=available)
    reference.name = new.name
    clip.media_reference = reference
    clip.source_range = otio.opentime.TimeRange(rt(new.media_in), rt(new.duration))


def original_media(clip: Any) -> str | None:
    """What the clip pointed at before relinking (kept in its Backlot metadata)."""
    return getattr(clip.media_reference, "target_url", None) or None


def media_offset(version: ShotVersion, media: Media) -> int:
    """Media frame minus shot frame in the version's media (image files may be numbered from 1)."""
    first = version.coverage.first
    if first is None:
        return 0
    return media.start_frame - first if media.kind == "image_sequence" else -first


def media_url(store: Store, version: ShotVersion, relative: str | None = None) -> str:
    return _url(store, version.content_hash, relative)


@lru_cache(maxsize=4096)
def _url(store: Store, content_hash: str, relative: str | None) -> str:
    """The URL of a file or folder of a version (resolving local paths costs a system call each)."""
    folder = store.version_dir(content_hash)
    if relative:
        folder = os.path.join(folder, relative) if store.local else f"{folder}/{relative}"
    return store.url(folder)


@contextlib.contextmanager
def _original_file(store: Store, rev: CutRevision) -> Iterator[Path]:
    """A local path to the revision's original file (a temporary copy for remote stores)."""
    local = Path(store.version_file(rev.stored_hash, rev.source_file)) if store.local else None
    if local is not None and local.is_file():
        yield local
        return
    if not store.exists(rev.file_sha256):
        raise InvalidInputError(f"revision {rev.number}'s original file {rev.source_file} is missing from the store "
                                f"({store.root}): re-import it")
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / rev.source_file
        with store.open_object(rev.file_sha256) as src, open(copy, "wb") as dst:
            dst.write(src.read())
        yield copy


def _media_choice(media: str, writer: Any) -> str:
    if media not in ("auto", "sequence", "movie"):
        raise InvalidInputError(f"media {media!r} is invalid: use auto, sequence or movie")
    if media == "auto":
        return "movie" if writer.name in _NO_SEQUENCE_WRITERS else "sequence"
    return media


def _find_writer(output: Path, name: str | None) -> Any:
    try:
        adapter = otio.adapters.from_name(name) if name else otio.adapters.from_filepath(str(output))
    except Exception:  # noqa: BLE001 - NotSupportedError / NoKnownAdapterForExtensionError
        writable = sorted(a.name for a in otio.plugins.ActiveManifest().adapters
                          if a.has_feature("write_to_file") or a.has_feature("write_to_string"))
        raise CutInputError(Where(file_label(output)),
                            f"no OTIO writer for {('adapter ' + repr(name)) if name else repr(output.suffix or '(no suffix)')}; "
                            f"writers: {', '.join(writable)} (choose one with --adapter)") from None
    if not (adapter.has_feature("write_to_file") or adapter.has_feature("write_to_string")):
        raise CutInputError(Where(file_label(output)), f"the {adapter.name} adapter reads but cannot write")
    return adapter


def _write(write: Callable[[Path], None], output: Path, writer: Any) -> None:
    """`write` to a temporary name beside `output`, renamed into place: a failed write leaves no file."""
    if not output.parent.is_dir():
        raise InvalidInputError(f"{output.parent}: no such folder for the conformed cut")
    temp = output.with_name(f".{output.name}.tmp-{uuid.uuid4().hex}")
    try:
        write(temp)
        os.replace(temp, output)
    except OSError as exc:
        _remove(temp)
        raise InvalidInputError(f"{output}: cannot write the conformed cut ({exc.strerror or exc})") from None
    except Exception as exc:  # noqa: BLE001 - writers raise anything; the temp file never becomes the output
        _remove(temp)
        raise CutInputError(Where(file_label(output)), f"the {writer.name} writer cannot write this cut "
                                                       f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); "
                                                       "choose another format") from None


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()
