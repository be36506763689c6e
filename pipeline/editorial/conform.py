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
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import opentimelineio as otio
from sqlalchemy import text
from sqlalchemy.orm import Session

from pipeline.config import load_settings
from pipeline.db.cuts import CutRevision
from pipeline.editorial.errors import CutInputError, Where, file_label
from pipeline.editorial.frames import exact_rate
from pipeline.editorial.reader import ReadOptions, read_cut_file
from pipeline.editorial.revisions import find_revision
from pipeline.editorial.shot_versions import ShotVersion, current_shot_versions, shot_frames_held
from pipeline.errors import InvalidInputError
from pipeline.storage import Store
from pipeline.tracker.choices import parse_policy
from pipeline.tracker.projects import find_project
from pipeline.tracker.records import _Record

# Writers that fail on image sequence references (fcp_xml 1.0 leaves its URL unset): point them at movies.
_NO_SEQUENCE_WRITERS = {"fcp_xml"}
RELINKED, NO_VERSION, UNMATCHED, NO_MEDIA, NOT_COVERED = "relinked", "no_version", "unmatched", "no_media", "not_covered"


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class _ClipPlan:
    """What conform needs of one OTIO clip: its first item's shot and frame offset."""

    position: int
    path: tuple[int, ...]
    clip_name: str
    shot_id: int | None
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
    plans = _clip_plans(session, rev)
    prefer = _media_choice(media, writer)
    versions = current_shot_versions(session, {p.shot_id for p in plans if p.shot_id}, state,
                                     movies=prefer == "movie")
    rate = Fraction(rev.fps_num, rev.fps_den)
    with _original_file(store, rev) as original:
        read = read_cut_file(original, ReadOptions.from_dict(rev.reader_options), default_rate=rate)
    timeline = read.timeline
    clips = [relink_planned(timeline, plan, versions.get(plan.shot_id) if plan.shot_id else None, rate, store, rev,
                            prefer) for plan in plans]
    timeline.metadata["backlot"] = {"project": proj.code, "revision": rev.number, "policy": state,
                                    "relinked": sum(1 for c in clips if c.status == RELINKED)}
    _write(timeline, output, writer, writer_options or {})
    return ConformResult(proj.code, rev.number, state, str(output), writer.name, clips)


def _clip_plans(session: Session, rev: CutRevision) -> list[_ClipPlan]:
    rows = session.execute(text("""
        SELECT ci.position, ci.otio_path, ci.clip_name, s.id AS shot_id, ci.shot_code, ci.cut_in, ci.cut_out_incl,
               ci.needed_in
        FROM cut_items ci LEFT JOIN shots s ON s.project_id = :p AND s.code = ci.shot_code
        WHERE ci.revision_id = :r ORDER BY ci.position
    """), {"p": rev.project_id, "r": rev.id}).all()
    by_path: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        by_path[row.otio_path].append(row)
    plans = []
    for path, items in by_path.items():
        first = items[0]
        delta = first.cut_in - first.needed_in if first.cut_in is not None else None
        matched = [i for i in items if i.cut_in is not None]
        plans.append(_ClipPlan(first.position, tuple(int(p) for p in path.split(".")), first.clip_name,
                               first.shot_id, first.shot_code, delta,
                               min((i.cut_in for i in matched), default=0),
                               max((i.cut_out_incl for i in matched), default=-1)))
    return sorted(plans, key=lambda p: p.position)


def relink_planned(timeline: Any, plan: _ClipPlan, version: ShotVersion | None, rate: Fraction, store: Store,
                   rev: CutRevision, prefer: str) -> ConformedClip:
    clip = _clip_at(timeline, plan.path, plan.clip_name, rev)
    if plan.shot_code is None or plan.delta is None:
        return ConformedClip(plan.position, plan.clip_name, None, UNMATCHED)
    if version is None:
        return ConformedClip(plan.position, plan.clip_name, plan.shot_code, NO_VERSION)
    media = pick_media(version, prefer)
    if media is None:
        return ConformedClip(plan.position, plan.clip_name, plan.shot_code, NO_MEDIA, version.ref, version.version_id)
    if not shot_frames_held(version).covers(plan.need_first, plan.need_last):
        # Pointing at frames the version does not have would make a cut no player can show.
        return ConformedClip(plan.position, plan.clip_name, plan.shot_code, NOT_COVERED, version.ref,
                             version.version_id)
    original = original_media(clip)
    media_in = relink_clip(clip, version, media, plan.delta, rate, store)
    clip.metadata["backlot"] = {"shot": plan.shot_code, "version": version.ref, "version_id": version.version_id,
                                "shot_in": media_in - media_offset(version, media), "revision": rev.number,
                                **({"original_media": original} if original else {})}
    return ConformedClip(plan.position, plan.clip_name, plan.shot_code, RELINKED, version.ref, version.version_id,
                         _reference_url(clip.media_reference), media_in)


def pick_media(version: ShotVersion, prefer: str) -> Media | None:
    """The version's movie (prefer="movie") or image sequence (else), falling back to the other."""
    if prefer == "movie":
        return version.movie or version.sequence
    return version.sequence or version.movie


def relink_clip(clip: Any, version: ShotVersion, media: Media, delta: int, rate: Fraction, store: Store) -> int:
    """Point `clip` at `media` of the version; its in point moves to the media's frame. Returns that frame.

    `delta` turns the clip's source frames into shot frames; the media holds shot frames
    from `frame_range[0]` (image files numbered from their first file's number).
    """
    source = clip.source_range if clip.source_range is not None else clip.trimmed_range()
    source_rate = exact_rate(source.start_time.rate)
    source_in = round(source.start_time.value)
    frames = round(source.duration.value)
    shot_in = source_in + delta
    first_shot_frame = version.coverage.first
    if media.kind == "image_sequence":
        media_in = shot_in + media_offset(version, media)
        reference = otio.schema.ImageSequenceReference(
            target_url_base=media_url(store, version, media.folder) + "/", name_prefix=media.prefix,
            name_suffix=media.suffix, start_frame=media.start_frame, frame_step=1, rate=float(rate),
            frame_zero_padding=media.padding,
            available_range=otio.opentime.TimeRange(
                otio.opentime.RationalTime(media.start_frame, float(rate)),
                otio.opentime.RationalTime(media.last_frame - media.start_frame + 1, float(rate))))
    else:
        assert first_shot_frame is not None
        media_in = shot_in - first_shot_frame
        count = version.coverage.last - first_shot_frame + 1
        reference = otio.schema.ExternalReference(
            target_url=media_url(store, version, media.file),
            available_range=otio.opentime.TimeRange(otio.opentime.RationalTime(0, float(rate)),
                                                    otio.opentime.RationalTime(count, float(rate))))
    reference.name = version.ref
    clip.media_reference = reference
    # The same length in time, so nothing after the clip moves (equal frames when the rates agree).
    duration = frames if source_rate == rate else round(frames * rate / source_rate)
    clip.source_range = otio.opentime.TimeRange(otio.opentime.RationalTime(media_in, float(rate)),
                                                otio.opentime.RationalTime(duration, float(rate)))
    return media_in


def original_media(clip: Any) -> str | None:
    """What the clip pointed at before relinking (kept in its Backlot metadata)."""
    return getattr(clip.media_reference, "target_url", None) or None


def media_offset(version: ShotVersion, media: Media) -> int:
    """Media frame minus shot frame in the version's media (image files may be numbered from 1)."""
    first = version.coverage.first
    if first is None:
        return 0
    return media.start_frame - first if media.kind == "image_sequence" else -first


def _reference_url(reference: Any) -> str:
    url = getattr(reference, "target_url", None)
    return url if url else reference.abstract_target_url("#")


def media_url(store: Store, version: ShotVersion, relative: str | None = None) -> str:
    return _url(store, version.content_hash, relative)


@lru_cache(maxsize=4096)
def _url(store: Store, content_hash: str, relative: str | None) -> str:
    """The URL of a file or folder of a version (resolving local paths costs a system call each)."""
    folder = store.version_dir(content_hash)
    if relative:
        folder = os.path.join(folder, relative) if store.local else f"{folder}/{relative}"
    return store.url(folder)


def _clip_at(timeline: Any, path: tuple[int, ...], name: str, rev: CutRevision) -> Any:
    node = timeline.tracks
    try:
        for index in path:
            node = node[index]
    except IndexError:
        node = None
    if not isinstance(node, otio.schema.Clip) or node.name != name:
        raise InvalidInputError(f"revision {rev.number}'s stored file {rev.source_file} no longer reads as it did "
                                f"at import (clip {name!r} is not at {'.'.join(map(str, path))}): "
                                "re-import the file with the installed OTIO adapters")
    return node


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


def _write(timeline: Any, output: Path, writer: Any, options: dict[str, Any]) -> None:
    if not output.parent.is_dir():
        raise InvalidInputError(f"{output.parent}: no such folder for the conformed cut")
    temp = output.with_name(f".{output.name}.tmp-{uuid.uuid4().hex}")
    try:
        otio.adapters.write_to_file(timeline, str(temp), adapter_name=writer.name, **options)
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
