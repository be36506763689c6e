"""Importing a cut: read, map clips to shots, place them in shot frames, diff, write.

Everything a revision needs is computed before the first write; the writes (the original
file into the store, then the revision, its items, shots, change list and event) happen
in the caller's transaction, so a failure leaves no row behind. Importing the same file
with the same options and settings as the latest revision reads nothing and writes nothing.

Shot frames follow the media: a shot's frame numbers are tied to the source frames of the
take it was first cut from (first frame 1001 by default), so a later trim at the head moves
`cut_in` by the frames trimmed. A new take starts at the shot's `cut_in` when it replaces the
old one, after the frames of the shot's other takes when it joins them. A shot used twice
covers the union of its uses.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import re
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Container, Iterable, Iterator

import msgspec
import psycopg
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from backlot.config import load_settings
from backlot.db.cuts import CutChange, CutRevision
from backlot.db.models import Event, EventKind, Project
from backlot.editorial.diff import OMITTED, ShotChange, ShotCut, ShotUse, diff_cuts, summarize
from backlot.editorial.errors import CutInputError, Where
from backlot.editorial.flatten import CutClip, flatten_cut
from backlot.editorial.frames import Retime, format_rate, frames_to_timecode, is_drop_frame_rate
from backlot.editorial.mapping import ShotMatch, clip_matcher
from backlot.editorial.reader import ReadOptions, ReadResult, hash_bytes, read_cut_file
from backlot.editorial.settings import EditorialSettings, effective, get_settings
from backlot.editorial.shot_versions import Impact, ShotVersion, current_shot_versions, impact_of
from backlot.editorial import shots as shot_writes
from backlot.editorial.bulk import gc_paused
from backlot.editorial.shots import ExistingShot, ShotPlan, load_shots
from backlot.editorial.sql import execute_custom_plan, fetch_rows
from backlot.errors import DatabaseError, InvalidInputError
from backlot.refs import CODE_RE
from backlot.storage import Store, StoredFile
from backlot.tracker.projects import _actor, find_project
from backlot.tracker.records import _Record

_LOCK_NAMESPACE = 0x0C07  # pg_advisory_xact_lock(namespace, project id): one import per project at a time
# An import that drops more than this share of the previous revision's shots is worth a warning (a file cut
# short at a line boundary reads as a valid, shorter cut); `max_omitted_share` makes it an error.
OMISSION_WARNING_SHARE = 0.25


@dataclass(frozen=True)
class RevisionRecord(_Record):
    id: int
    project: str
    number: int
    name: str
    source_file: str
    file_sha256: str
    adapter: str
    fps: Fraction
    record_in: int
    record_out_excl: int
    start_timecode: str
    clip_count: int
    matched_count: int
    track_policy: str
    reader_options: dict[str, Any]
    previous: int | None  # the number of the revision it is compared with
    created_by: str
    created_at: datetime


@dataclass(frozen=True)
class UnmatchedClip(_Record):
    position: int
    clip: str
    reel: str | None
    record_timecode: str
    where: str
    code: str | None  # a code found for a shot that does not exist
    reason: str


@dataclass(frozen=True)
class ImportResult(_Record):
    revision: RevisionRecord
    created: bool  # False: the same import as the latest revision, nothing written
    changes: list[ShotChange]
    unmatched: list[UnmatchedClip]
    shots_created: list[str] = field(default_factory=list)
    shots_updated: list[str] = field(default_factory=list)

    @property
    def summary(self) -> dict[str, int]:
        return summarize(self.changes)

    @property
    def omission(self) -> tuple[int, int]:
        """(shots of the previous revision this one omits, shots the previous revision had)."""
        previous = sum(1 for c in self.changes if c.old_position is not None)
        return sum(1 for c in self.changes if OMITTED in c.kinds), previous


@dataclass
class _Item:
    """A clip of the new revision with its shot and shot frames, before writing."""

    clip: CutClip
    match: ShotMatch | None
    cut_in: int | None = None
    cut_out_incl: int | None = None


def import_cut(session: Session, project: str, path: str | Path, *, options: ReadOptions = ReadOptions(),
               track_policy: str | None = None, first_frame: int | None = None, handles: int | None = None,
               create_shots: bool = False, name_unmatched: str | None = None, store: Store | None = None,
               actor: str | None = None, max_omitted_share: float | None = None) -> ImportResult:
    """Import an edit file as the project's next cut revision (see the module docstring).

    `max_omitted_share`: refuse (before anything is written) a revision that omits more than this
    share of the previous revision's shots, e.g. OMISSION_WARNING_SHARE."""
    proj = find_project(session, project)
    rate = Fraction(proj.fps_num, proj.fps_den)
    settings = effective(get_settings(session, proj), track_policy=track_policy, first_frame=first_frame,
                         handles=handles)
    if name_unmatched is not None:
        _check_template(name_unmatched)
    path = Path(path)
    data, stat = _read_file(path)
    session.execute(text("SELECT pg_advisory_xact_lock(:ns, :id)"), {"ns": _LOCK_NAMESPACE, "id": proj.id})
    latest = _latest_revision(session, proj.id)
    with gc_paused(), ThreadPoolExecutor(2, thread_name_prefix="backlot-import") as pool:
        # gc_paused: tens of thousands of objects per cut, none in a cycle.
        hashing = pool.submit(hash_bytes, data)  # lets go of the interpreter: hashes while the file is read
        if latest is not None and latest.file_size == len(data):  # maybe the same import again: know first
            if latest.import_key == _import_key(hashing.result(), options, rate, settings, handles, create_shots,
                                                name_unmatched):
                return load_import(session, proj, latest, created=False)
        session.flush()  # a worker reads the latest revision's items on the session's connection meanwhile
        latest_rows = pool.submit(_fetch_revision_rows, session.connection().connection.driver_connection,
                                  latest.id) if latest else None
        read = read_cut_file(path, options, default_rate=rate, data=data, sha256=hashing.result, structs=True)
        key = _import_key(read.sha256, options, rate, settings, handles, create_shots, name_unmatched)
        if read.rate != rate:
            raise CutInputError(Where(read.label), f"the cut runs at {format_rate(read.rate)} fps but project "
                                                   f"{proj.code} at {format_rate(rate)} fps: import it into a project "
                                                   "at that rate, or pass --rate if the file's rate is wrong")
        plan = _plan_import(session, proj, read, latest, latest_rows, settings, handles, name_unmatched)
        if max_omitted_share is not None:
            _check_omissions(plan, read.label, max_omitted_share)
        stored_hash = _store_original(store, path, read, stat)
        result = _write_import(session, proj, plan, key, stored_hash, create_shots, _actor(actor))
        del read, plan  # freed while the collector is off (see gc_paused)
    return result


@dataclass
class _ImportPlan:
    """Everything a revision needs, read or worked out before anything is written; the shots' cuts and
    rows are worked out while the server stores the items (see _write_import)."""

    read: ReadResult
    settings: EditorialSettings
    handles: int | None  # the import's handles override
    latest: CutRevision | None
    items: list[_Item]
    existing: dict[str, ExistingShot]
    latest_rows: list[tuple]  # the latest revision's items (see _revision_rows), for its shots' cuts
    seen_before: set[str]  # new shots of this revision that an older one had
    omitted_ids: list[int]  # shots the previous revision had and this one drops
    versions: dict[int, ShotVersion]  # the current version of each existing shot in the cut
    omitted_codes: set[str]  # shots the previous revision had and this one drops (existing or not)
    previous_codes: int  # how many shots the previous revision had
    new_cuts: dict[str, ShotCut] = field(default_factory=dict)
    shots: dict[str, ShotPlan] = field(default_factory=dict)

    def work_out_shots(self) -> None:
        """Each shot's cut in this revision, and what its row becomes."""
        self.new_cuts = shot_cuts_of_items(self.items)
        self.shots = _shot_plans(self.items, self.new_cuts, self.existing, self.settings, self.handles)

    def release(self) -> None:
        """Let the clips and cuts (most of an import's objects) go once nothing needs them (the shots' rows stay)."""
        for bulk in (self.items, self.latest_rows, self.new_cuts, self.versions):
            bulk.clear()


def _plan_import(session: Session, proj: Project, read: ReadResult, latest: CutRevision | None,
                 latest_items: Future[list[tuple]] | None, settings: EditorialSettings, handles: int | None,
                 name_unmatched: str | None) -> _ImportPlan:
    """`latest_items`: the latest revision's _revision_rows, being read by a worker (the session is left
    alone until they are in)."""
    items = _map_clips(flatten_cut(read, settings.track_policy), settings)
    _name_unmatched(items, name_unmatched)
    latest_rows = latest_items.result() if latest_items else []
    new_codes = {i.match.code for i in items if i.match}  # every matched item gets shot frames: the new cut's shots
    existing = load_shots(session, proj.id, new_codes)
    previous = _previous_uses(session, proj.id, latest, latest_rows, items)
    old_codes = {row[1] for row in latest_rows}  # the shots of _shot_cuts_of_rows(latest_rows)
    seen = _seen_before(session, proj.id, latest, new_codes - old_codes)
    omitted = list(_omitted_shot_ids(session, proj.id, old_codes - new_codes).values())
    versions = current_shot_versions(session, {existing[c].id for c in new_codes if c in existing}, media=False)
    _place_in_shot_frames(items, previous, existing, settings.first_frame)
    return _ImportPlan(read, settings, handles, latest, items, existing, latest_rows, seen, omitted, versions,
                       old_codes - new_codes, len(old_codes))


def _check_omissions(plan: _ImportPlan, label: str, max_share: float) -> None:
    omitted, previous = len(plan.omitted_codes), plan.previous_codes
    if plan.latest is not None and previous and omitted / previous > max_share:
        raise CutInputError(Where(label), f"omits {omitted} of the {previous} shots of revision "
                                          f"{plan.latest.number} ({omitted / previous:.0%}, more than "
                                          f"{max_share:.0%}): check that the file is complete; nothing was imported")


def _write_import(session: Session, proj: Project, plan: _ImportPlan, key: str, stored_hash: str,
                  create_shots: bool, actor: str) -> ImportResult:
    """The writes, all in the caller's transaction: revision, items, change list, shots, event."""
    read, existing = plan.read, plan.existing
    mapped = sum(1 for i in plan.items if i.match and (create_shots or i.match.code in existing))
    revision = _insert_revision(session, proj, read, key, plan.settings, plan.items, mapped, plan.latest,
                                stored_hash, actor)
    existing_ids = {code: shot.id for code, shot in existing.items()}
    with _writing(session) as write:
        write.copy("cut_items", _ITEM_COLUMNS, _item_lines(revision.id, plan.items))
        # Python works out the shots, the change list and the result, and lets the cut's objects go, while
        # the server stores the rows (no queries in here). New shots have no versions: the impact needs
        # only the existing ones.
        plan.work_out_shots()
        # A shot that will not exist (not created) has nothing to render: no impact.
        rendered = plan.shots if create_shots else {c: p for c, p in plan.shots.items() if c in existing}
        changes = diff_cuts(_shot_cuts_of_rows(plan.latest_rows), plan.new_cuts, plan.seen_before,
                            _impact_of_shot(existing_ids, rendered, plan.versions))
        write.copy("cut_changes", _CHANGE_COLUMNS, [_change_line(revision.id, change) for change in changes])
        shots = plan.shots
        changed_shots = [(existing[c], p) for c, p in shots.items() if c in existing]
        updated: list[str] | None = None
        if not shot_writes.sequences_wanted(changed_shots):  # no sequence to find or create: the worker updates
            updated, statement = shot_writes.shot_updates(changed_shots, {})
            if statement is not None:
                write.execute("shots", *statement)
        will_exist = existing.keys() | (shots.keys() if create_shots else set())
        unmatched = _unmatched(plan.items, will_exist, read.rate, create_shots)
        clips = len(plan.items)
        plan.release()
    if updated is None:
        updated = shot_writes.update_shots(session, proj, changed_shots, actor)
    created_ids = shot_writes.create_shots(session, proj, [p for c, p in shots.items() if c not in existing], actor) \
        if create_shots else {}
    shot_writes.clear_order(session, plan.omitted_ids)
    session.add(Event(project_id=proj.id, kind=EventKind.cut_imported, actor=actor,
                      payload={"cut_revision": revision.number, "file": read.label, "adapter": read.adapter,
                               "clips": clips, "changes": summarize(changes), "shots_created": sorted(created_ids)}))
    previous = plan.latest.number if plan.latest else None
    return ImportResult(_revision_record(revision, proj.code, previous), True, changes, unmatched,
                        sorted(created_ids), sorted(updated))


# -- reading ---------------------------------------------------------------------------------


def _read_file(path: Path) -> tuple[bytes, os.stat_result]:
    try:
        stat = path.stat()
        return path.read_bytes(), stat
    except FileNotFoundError:
        raise CutInputError(Where(str(path)), "no such file") from None
    except IsADirectoryError:
        raise CutInputError(Where(str(path)), "is a folder, not an edit file") from None
    except OSError as exc:
        raise CutInputError(Where(str(path)), f"cannot be read ({exc.strerror})") from None


def _import_key(sha: str, options: ReadOptions, rate: Fraction, settings: EditorialSettings, handles: int | None,
                create_shots: bool, name_unmatched: str | None) -> str:
    """What makes an import the same: the bytes, how they are read, and the settings that map them."""
    body = {"file": sha, "options": options.to_dict(), "rate": format_rate(rate), "settings": settings.to_dict(),
            "handles_override": handles, "create_shots": create_shots, "name_unmatched": name_unmatched}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _map_clips(clips: list[CutClip], settings: EditorialSettings) -> list[_Item]:
    """Each clip with its shot; the pieces of one OTIO clip share one lookup."""
    found: dict[tuple[int, ...], ShotMatch | None] = {}
    items = []
    match = clip_matcher(settings.rules)
    for clip in clips:
        if clip.path not in found:
            found[clip.path] = match(clip.clip, clip.reel)
        items.append(_Item(clip, found[clip.path]))
    return items


def _check_template(template: str) -> None:
    try:
        code = template.format(position=1, name="clip", reel="reel", track="V1")
    except (KeyError, IndexError, ValueError) as exc:
        raise InvalidInputError(f"--name-unmatched {template!r} is not a valid template ({exc}): "
                                "use {position}, {name}, {reel}, {track}, e.g. 'ed_{position:04d}'") from None
    if not code:
        raise InvalidInputError(f"--name-unmatched {template!r} gives an empty code")


def _name_unmatched(items: list[_Item], template: str | None) -> None:
    """Give clips no rule matched a code from the template (made into a valid shot code)."""
    if template is None:
        return
    for item in items:
        if item.match is None:
            c = item.clip
            raw = template.format(position=c.position, name=c.name, reel=c.reel or "", track=c.track)
            code = "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in raw).strip("_-")[:64]
            if code and CODE_RE.match(code):
                item.match = ShotMatch(code, None, "name-unmatched template", raw)


# -- shot frames -----------------------------------------------------------------------------


def _previous_uses(session: Session, project_id: int, latest: CutRevision | None, latest_rows: list[tuple],
                   items: list[_Item]) -> dict[str, dict[str, int]]:
    """Per shot code and take (source identity) of the new cut: shot frame minus source frame, from
    the last revision that cut that take (the latest's rows, already read, answer most)."""
    wanted = {(i.match.code, i.clip.source_identity) for i in items if i.match}
    uses: dict[str, dict[str, int]] = defaultdict(dict)
    for row in latest_rows:  # in position order: the first use of a take wins
        uses[row[1]].setdefault(row[2], row[6])
    missing = {code for code, take in wanted if take not in uses.get(code, ())}
    if missing and latest is not None:
        for code, take, delta in _older_uses(session, project_id, latest.number, missing):
            uses[code].setdefault(take, delta)
    return uses


def _older_uses(session: Session, project_id: int, before: int, codes: set[str]) -> list[tuple[str, str, int]]:
    """(shot code, take, delta) of `codes` from the revisions before number `before`, the latest per take."""
    rows = execute_custom_plan(session, """
        SELECT DISTINCT ON (ci.shot_code, source) ci.shot_code, source, ci.cut_in - ci.needed_in AS delta
        FROM cut_revisions r
        JOIN cut_items ci ON ci.revision_id = r.id
        CROSS JOIN LATERAL (SELECT coalesce(ci.reel, ci.media_url, ci.clip_name) AS source) s
        WHERE r.project_id = :p AND r.number < :n AND ci.shot_code = ANY(:codes) AND ci.cut_in IS NOT NULL
        ORDER BY ci.shot_code, source, r.number DESC, ci.position
    """, {"p": project_id, "n": before, "codes": sorted(codes)})
    return [(row.shot_code, row.source, row.delta) for row in rows]


def _place_in_shot_frames(items: list[_Item], previous: dict[str, dict[str, int]],
                          existing: dict[str, ExistingShot], first_frame: int) -> None:
    """Give each matched item its shot frames.

    Per shot, each take (source) keeps the frame offset an earlier cut gave it. A take new to
    the shot starts at the shot's start when it is the only one, else right after the frames
    the shot's other takes use, so one render covering the shot's range covers every take.
    """
    takes: dict[str, dict[str, list[_Item]]] = defaultdict(dict)  # code -> take -> items, by first use
    for item in items:
        if item.match:
            takes[item.match.code].setdefault(item.clip.source_identity, []).append(item)
    for code, by_take in takes.items():
        known = previous.get(code, {})
        placed_end: int | None = None
        for take in sorted(by_take, key=lambda t: t not in known):  # anchored takes first
            members = by_take[take]
            first_needed = min(m.clip.needed_in for m in members)
            if take in known:
                delta = known[take]
            elif placed_end is None:
                delta = (existing[code].cut_in if code in existing else first_frame) - first_needed
            else:
                delta = placed_end + 1 - first_needed
            for m in members:
                m.cut_in = m.clip.needed_in + delta
                m.cut_out_incl = m.clip.needed_out_excl - 1 + delta
            end = max(m.cut_out_incl for m in members)
            placed_end = end if placed_end is None else max(placed_end, end)


def shot_cuts_of_items(items: list[_Item]) -> dict[str, ShotCut]:
    uses: dict[str, list[ShotUse]] = defaultdict(list)
    for item in items:
        if item.match and item.cut_in is not None and item.cut_out_incl is not None:
            c = item.clip
            uses[item.match.code].append(ShotUse(c.position, c.source_identity, c.retime.label(), item.cut_in,
                                                 item.cut_out_incl))
    return _shot_cuts(uses)


def _shot_cuts(uses: dict[str, list[ShotUse]]) -> dict[str, ShotCut]:
    """Each shot's cut from its uses. `uses` is filled in position order, so each shot's list is in
    order and the dict's order is the shots' order of first appearance (their rank): no sorting."""
    cuts = {}
    for rank, (code, shot_uses) in enumerate(uses.items(), start=1):
        if len(shot_uses) == 1:
            use = shot_uses[0]
            cuts[code] = ShotCut(code, rank, use.cut_in, use.cut_out_incl, (use,))
        else:
            cuts[code] = ShotCut(code, rank, min([u.cut_in for u in shot_uses]),
                                 max([u.cut_out_incl for u in shot_uses]), tuple(shot_uses))
    return cuts


def _shot_plans(items: list[_Item], cuts: dict[str, ShotCut], existing: dict[str, ExistingShot],
                settings: EditorialSettings, handles: int | None) -> dict[str, ShotPlan]:
    sequences = {}
    for item in items:
        if item.match and item.match.code not in sequences:
            sequences[item.match.code] = item.match.sequence
    plans = {}
    for code, cut in cuts.items():
        shot = existing.get(code)
        shot_handles = handles if handles is not None else (shot.handles if shot else settings.handles)
        plans[code] = ShotPlan(code, sequences.get(code), cut.cut_in, cut.cut_out_incl, shot_handles, cut.order)
    return plans


# -- previous revisions ------------------------------------------------------------------------


def _latest_revision(session: Session, project_id: int) -> CutRevision | None:
    return session.scalar(select(CutRevision).where(CutRevision.project_id == project_id)
                          .order_by(CutRevision.number.desc()).limit(1))


def _revision_shot_cuts(session: Session, revision_id: int) -> dict[str, ShotCut]:
    return _shot_cuts_of_rows(_revision_rows(session, revision_id))


def _revision_rows(session: Session, revision_id: int) -> list[tuple]:
    """A revision's items mapped to shot frames, in position order, as plain tuples:
    (position, code, source identity, speed_num, speed_den, freeze, shot frame minus source frame, cut_in,
    cut_out_incl)."""
    return fetch_rows(session, _REVISION_ROWS, (revision_id,))


_REVISION_ROWS = ("SELECT position, shot_code, coalesce(nullif(reel, ''), nullif(media_url, ''), clip_name), "
                  "speed_num, speed_den, \"freeze\", cut_in - needed_in, cut_in, cut_out_incl FROM cut_items "
                  "WHERE revision_id = %s AND shot_code IS NOT NULL AND cut_in IS NOT NULL ORDER BY position")


def _fetch_revision_rows(connection: psycopg.Connection[Any], revision_id: int) -> list[tuple]:
    """_revision_rows on the session's connection, from a worker (while the session is left alone)."""
    with connection.cursor() as cursor:
        return cursor.execute(_REVISION_ROWS, (revision_id,)).fetchall()


def _shot_cuts_of_rows(rows: list[tuple]) -> dict[str, ShotCut]:
    uses: dict[str, list[ShotUse]] = defaultdict(list)
    labels: dict[tuple[int, int, bool], str] = {}
    for position, code, source, num, den, freeze, _, cut_in, cut_out in rows:
        key = (num, den, freeze)
        if key not in labels:
            labels[key] = Retime(Fraction(num, den), freeze).label()
        uses[code].append(ShotUse(position, source, labels[key], cut_in, cut_out))
    return _shot_cuts(uses)


def _seen_before(session: Session, project_id: int, latest: CutRevision | None, codes: set[str]) -> set[str]:
    """Which of `codes` were in a revision before the latest (so they come back reinstated)."""
    if not codes or latest is None:
        return set()
    rows = execute_custom_plan(session, """
        SELECT DISTINCT ci.shot_code FROM cut_revisions r JOIN cut_items ci ON ci.revision_id = r.id
        WHERE r.project_id = :p AND r.number < :n AND ci.shot_code = ANY(:codes)
    """, {"p": project_id, "n": latest.number, "codes": sorted(codes)})
    return {row.shot_code for row in rows}


def _omitted_shot_ids(session: Session, project_id: int, gone: set[str]) -> dict[str, int]:
    return {code: shot.id for code, shot in load_shots(session, project_id, gone).items()} if gone else {}


def _impact_of_shot(shot_ids: dict[str, int], plans: dict[str, ShotPlan],
                    versions: dict[int, ShotVersion]) -> Callable[[str], Impact | None]:
    """A shot's production impact: does its new range (with handles) fit its current version?"""
    def impact(code: str) -> Impact | None:
        plan = plans.get(code)
        if plan is None:
            return None
        return impact_of(versions.get(shot_ids.get(code, -1)), plan.cut_in - plan.handles,
                         plan.cut_out_incl + plan.handles)
    return impact


# -- writing ---------------------------------------------------------------------------------


def _store_original(store: Store | None, path: Path, read: ReadResult, before: os.stat_result) -> str:
    """Keep the file (conform re-reads it), as a store folder holding it; returns that folder's hash.

    Refuses if the file changed while it was being read: the store is content-addressed.
    """
    content_hash, _ = (store or Store(load_settings().store_url)).put_version(
        [(path, read.label)], [StoredFile(read.label, read.sha256, read.size)])
    after = path.stat()
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        raise CutInputError(Where(read.label), "changed while it was being imported: import it again")
    return content_hash


def _insert_revision(session: Session, proj: Project, read: ReadResult, key: str, settings: EditorialSettings,
                     items: list[_Item], mapped: int, latest: CutRevision | None, stored_hash: str,
                     actor: str) -> CutRevision:
    """`mapped`: the clips whose shot exists once the import is written."""
    options = read.options.to_dict() | {"drop_frame": read.drop_frame}
    revision = CutRevision(
        project_id=proj.id, number=(latest.number if latest else 0) + 1, name=read.timeline.name or read.label,
        source_file=read.label, file_sha256=read.sha256, file_size=read.size, stored_hash=stored_hash,
        adapter=read.adapter, reader_options=options, import_key=key, track_policy=settings.track_policy,
        fps_num=read.rate.numerator, fps_den=read.rate.denominator,
        record_in=min(i.clip.record_in for i in items), record_out_excl=max(i.clip.record_out_excl for i in items),
        clip_count=len(items), matched_count=mapped,
        previous_id=latest.id if latest else None, created_by=actor)
    session.add(revision)
    session.flush()
    return revision


_ITEM_COLUMNS = ("revision_id", "position", "otio_path", "track", "track_index", "clip_name", "reel", "media_url",
                 "record_in", "record_out_excl", "source_rate_num", "source_rate_den", "clip_source_in", "source_in",
                 "source_out_excl", "speed_num", "speed_den", "freeze", "transition_in", "transition_out",
                 "needed_in", "needed_out_excl", "shot_code", "match_rule", "match_value", "cut_in", "cut_out_incl")
_CHANGE_COLUMNS = ("revision_id", "shot_code", "kinds", "old_cut_in", "old_cut_out_incl", "new_cut_in",
                   "new_cut_out_incl", "old_position", "new_position", "needs_render", "detail")


def _item_lines(revision_id: int, items: list[_Item]) -> Iterator[str]:
    """The cut_items rows in COPY text format; integers straight into the line, text escaped when it must be.
    The pieces of one OTIO clip share their text columns, so each clip's are escaped once."""
    clip_texts: dict[tuple[int, ...], str] = {}
    match_texts: dict[int, str] = {}
    for item in items:
        c, match = item.clip, item.match
        clip_text = clip_texts.get(c.path)
        if clip_text is None:
            clip_text = clip_texts[c.path] = (f"{_text('.'.join(map(str, c.path)))}\t{_text(c.track)}\t"
                                              f"{c.track_index}\t{_text(c.name)}\t{_text(c.reel)}\t"
                                              f"{_text(c.media_url)}")
        match_text = match_texts.get(id(match))
        if match_text is None:
            match_text = match_texts[id(match)] = (f"{_text(match.code)}\t{_text(match.rule)}\t{_text(match.value)}"
                                                   if match else f"{_NULL}\t{_NULL}\t{_NULL}")
        rate, retime = c.source_rate, c.retime
        yield (
            f"{revision_id}\t{c.position}\t{clip_text}\t{c.record_in}\t{c.record_out_excl}\t{rate.numerator}\t"
            f"{rate.denominator}\t{c.clip_source_in}\t{c.source_in}\t{c.source_out_excl}\t{retime.speed.numerator}\t"
            f"{retime.speed.denominator}\t{'t' if retime.freeze else 'f'}\t{c.transition_in}\t{c.transition_out}\t"
            f"{c.needed_in}\t{c.needed_out_excl}\t{match_text}\t{_NULL if item.cut_in is None else item.cut_in}\t"
            f"{_NULL if item.cut_out_incl is None else item.cut_out_incl}\n")


def _change_line(revision_id: int, c: ShotChange) -> str:
    detail = _json({**c.detail, "head": c.head, "tail": c.tail})
    values = (c.old_cut_in, c.old_cut_out_incl, c.new_cut_in, c.new_cut_out_incl, c.old_position, c.new_position)
    numbers = "\t".join(_NULL if v is None else str(v) for v in values)
    render = _NULL if c.needs_render is None else ("t" if c.needs_render else "f")
    return f"{revision_id}\t{_text(c.shot)}\t{_text_array(c.kinds)}\t{numbers}\t{render}\t{detail}\n"


_COPY_CHUNK = 1024  # rows per write (~200 kB): the server stores one chunk while the next is formatted
_END = None  # the last "chunk" of a table's rows


class _Writer:
    """What _writing yields: rows (COPY) and statements for its worker to send, in the order given."""

    def __init__(self, connection: psycopg.Connection[Any], worker: ThreadPoolExecutor):
        self.connection, self.worker = connection, worker
        self.jobs: list[tuple[str, Future[None]]] = []  # (what, job)
        self.chunks: list[queue.SimpleQueue[str | None | BaseException]] = []

    def copy(self, table: str, columns: tuple[str, ...], lines: Iterable[str]) -> None:
        """COPY `lines` (rows in COPY text format) into `table`; this thread formats them in chunks as the
        worker sends them."""
        self.chunks.append(queue.SimpleQueue())
        self.jobs.append((table, self.worker.submit(_copy_rows, self.connection, table, columns, self.chunks[-1])))
        _put_chunks(self.chunks[-1], lines)

    def execute(self, what: str, sql: str, params: Any) -> None:
        self.jobs.append((what, self.worker.submit(_execute, self.connection, sql, params)))


@contextlib.contextmanager
def _writing(session: Session) -> Iterator[_Writer]:
    """Write through the session's own connection (same transaction) from a worker thread.

    The worker sends the rows and statements given to the yielded _Writer, and waits while the
    server stores them and runs the per-row checks (the foreign keys are checked at the end of
    each COPY), all of which lets go of the interpreter, so Python works on meanwhile (there are
    two cores). The block ends when the server has done everything; nothing in it may use the
    session (its connection is the worker's). What the session holds is flushed first.
    """
    session.flush()
    with ThreadPoolExecutor(1, thread_name_prefix="backlot-write") as worker:
        writer = _Writer(session.connection().connection.driver_connection, worker)
        try:
            yield writer
        except BaseException as exc:
            for waiting in writer.chunks:
                waiting.put(exc)  # the worker fails its COPY (the server discards it)
            raise
    for what, done in writer.jobs:
        try:
            done.result()
        except psycopg.Error as exc:
            message = (exc.diag.message_primary if exc.diag else None) or str(exc)
            raise DatabaseError(f"the database refused the cut's {what}: {message}") from exc


def _execute(connection: psycopg.Connection[Any], sql: str, params: Any) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _put_chunks(chunks: queue.SimpleQueue[str | None | BaseException], lines: Iterable[str]) -> None:
    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) == _COPY_CHUNK:
            chunks.put("".join(batch))
            batch = []
    if batch:
        chunks.put("".join(batch))
    chunks.put(_END)


def _copy_rows(connection: psycopg.Connection[Any], table: str, columns: tuple[str, ...],
               chunks: queue.SimpleQueue[str | None | BaseException]) -> None:
    """(In the worker.) One COPY of the chunks put in `chunks` until _END; an exception put there fails it."""
    quoted = ", ".join(f'"{column}"' for column in columns)  # "freeze" is a reserved word
    with connection.cursor() as cursor, cursor.copy(f"COPY {table} ({quoted}) FROM STDIN") as copy:
        while (chunk := chunks.get()) is not _END:
            if isinstance(chunk, BaseException):
                raise RuntimeError("the import failed while its rows were being stored") from chunk
            copy.write(chunk)


_NULL = "\\N"
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\x00": "\ufffd"})
_NEEDS_ESCAPE = re.compile("[\\\\\t\n\r\x00]")
_JSON = msgspec.json.Encoder()  # compact, and several times faster than the stdlib's encoder


def _text(value: str | None) -> str:
    """A text value in COPY text format (NUL, which text cannot hold, becomes U+FFFD)."""
    if value is None:
        return _NULL
    return value.translate(_COPY_ESCAPES) if _NEEDS_ESCAPE.search(value) else value


@lru_cache(maxsize=256)  # change kinds come in a few combinations
def _text_array(values: tuple[str, ...]) -> str:
    """A text[] in COPY text format: quoted elements."""
    inner = ",".join('"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    return _text("{" + inner + "}")


def _json(value: dict[str, Any]) -> str:
    """A jsonb value in COPY text format (jsonb refuses \\u0000)."""
    return _text(_JSON.encode(value).decode().replace("\\u0000", "\\ufffd"))


def _unmatched(items: list[_Item], shots: Container[str], rate: Fraction, create: bool) -> list[UnmatchedClip]:
    """The clips that match no shot (`shots`: the codes the project has once the import is written)."""
    result = []
    for item in items:
        c = item.clip
        if item.match is None:
            reason = "no mapping rule found a shot code"
        elif item.match.code not in shots:
            reason = f"no shot {item.match.code} in the project" + ("" if create else " (pass --create-shots)")
        else:
            continue
        result.append(UnmatchedClip(c.position, c.name, c.reel, frames_to_timecode(c.record_in, rate, False),
                                    str(c.where), item.match.code if item.match else None, reason))
    return result


# -- reading back ------------------------------------------------------------------------------


def _revision_record(r: CutRevision, project: str, previous: int | None) -> RevisionRecord:
    rate = Fraction(r.fps_num, r.fps_den)
    drop = bool((r.reader_options or {}).get("drop_frame"))
    return RevisionRecord(r.id, project, r.number, r.name, r.source_file, r.file_sha256, r.adapter, rate, r.record_in,
                          r.record_out_excl, frames_to_timecode(r.record_in, rate, drop and is_drop_frame_rate(rate)),
                          r.clip_count, r.matched_count, r.track_policy, r.reader_options, previous, r.created_by,
                          r.created_at)


def load_import(session: Session, proj: Project, revision: CutRevision, *, created: bool) -> ImportResult:
    """An import as stored: the revision, its change list and its unmatched clips."""
    previous = session.get(CutRevision, revision.previous_id) if revision.previous_id else None
    changes = stored_changes(session, revision.id)
    rows = session.execute(text("""
        SELECT ci.position, ci.clip_name, ci.reel, ci.record_in, ci.shot_code FROM cut_items ci
        LEFT JOIN shots s ON s.project_id = :p AND s.code = ci.shot_code
        WHERE ci.revision_id = :r AND s.id IS NULL ORDER BY ci.position
    """), {"p": proj.id, "r": revision.id})
    rate = Fraction(revision.fps_num, revision.fps_den)
    unmatched = [UnmatchedClip(i.position, i.clip_name, i.reel, frames_to_timecode(i.record_in, rate, False),
                               revision.source_file, i.shot_code,
                               "no mapping rule found a shot code" if i.shot_code is None
                               else f"no shot {i.shot_code} in the project") for i in rows]
    return ImportResult(_revision_record(revision, proj.code, previous.number if previous else None), created,
                        changes, unmatched)


def stored_changes(session: Session, revision_id: int) -> list[ShotChange]:
    t = CutChange.__table__.c
    rows = session.execute(select(t.shot_code, t.kinds, t.old_cut_in, t.old_cut_out_incl, t.new_cut_in,
                                  t.new_cut_out_incl, t.old_position, t.new_position, t.needs_render, t.detail)
                           .where(t.revision_id == revision_id)
                           .order_by(t.new_position.nulls_last(), t.old_position, t.shot_code))
    result = []
    for r in rows:
        detail = dict(r.detail or {})
        head, tail = detail.pop("head", 0), detail.pop("tail", 0)
        result.append(ShotChange(r.shot_code, tuple(r.kinds), r.old_cut_in, r.old_cut_out_incl, r.new_cut_in,
                                 r.new_cut_out_incl, r.old_position, r.new_position, head, tail, r.needs_render,
                                 detail))
    return result
