"""Cut revisions as stored: listing them, their items, and change lists between any two."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from sqlalchemy import select
from sqlalchemy.orm import Session

from backlot.db.cuts import CutItem, CutRevision
from backlot.db.models import Project
from backlot.editorial.diff import ShotChange, diff_cuts, with_impact
from backlot.editorial.frames import Retime, frames_to_timecode
from backlot.editorial.ingest import RevisionRecord, _revision_record, _revision_shot_cuts, stored_changes
from backlot.editorial.shot_versions import current_shot_versions, impact_of
from backlot.editorial.shots import load_shots
from backlot.editorial.sql import execute_custom_plan
from backlot.errors import InvalidInputError, NotFoundError
from backlot.tracker.projects import find_project
from backlot.tracker.records import _Record


@dataclass(frozen=True)
class ItemRecord(_Record):
    position: int
    track: str
    clip: str
    reel: str | None
    record_in: int
    record_out_excl: int
    record_timecode: str
    source_in: int
    source_out_excl: int
    retime: str
    shot: str | None
    matched_by: str | None
    cut_in: int | None
    cut_out_incl: int | None


@dataclass(frozen=True)
class DiffResult(_Record):
    project: str
    from_revision: int | None
    to_revision: int
    stored: bool  # True: the change list recorded at import; False: computed now from the items
    changes: list[ShotChange]


def list_revisions(session: Session, project: str) -> list[RevisionRecord]:
    proj = find_project(session, project)
    rows = list(session.scalars(select(CutRevision).where(CutRevision.project_id == proj.id)
                                .order_by(CutRevision.number)))
    numbers = {r.id: r.number for r in rows}
    return [_revision_record(r, proj.code, numbers.get(r.previous_id)) for r in rows]


def find_revision(session: Session, proj: Project, number: int | None = None) -> CutRevision:
    """Revision `number` of the project, or its latest."""
    stmt = select(CutRevision).where(CutRevision.project_id == proj.id)
    stmt = stmt.where(CutRevision.number == number) if number is not None else \
        stmt.order_by(CutRevision.number.desc()).limit(1)
    revision = session.scalar(stmt)
    if revision is None:
        what = f"no cut revision {number}" if number is not None else "no cut yet"
        raise NotFoundError(f"project {proj.code} has {what}: import one with `backlot cut import {proj.code} FILE`")
    return revision


def get_revision(session: Session, project: str, number: int | None = None) -> RevisionRecord:
    proj = find_project(session, project)
    revision = find_revision(session, proj, number)
    previous = session.get(CutRevision, revision.previous_id) if revision.previous_id else None
    return _revision_record(revision, proj.code, previous.number if previous else None)


def list_items(session: Session, project: str, number: int | None = None) -> list[ItemRecord]:
    proj = find_project(session, project)
    revision = find_revision(session, proj, number)
    rate = Fraction(revision.fps_num, revision.fps_den)
    rows = session.scalars(select(CutItem).where(CutItem.revision_id == revision.id).order_by(CutItem.position))
    return [ItemRecord(i.position, i.track, i.clip_name, i.reel, i.record_in, i.record_out_excl,
                       frames_to_timecode(i.record_in, rate, False), i.source_in, i.source_out_excl,
                       Retime(Fraction(i.speed_num, i.speed_den), i.freeze).label(), i.shot_code, i.match_rule,
                       i.cut_in, i.cut_out_incl) for i in rows]


def diff_revisions(session: Session, project: str, from_revision: int | None = None,
                   to_revision: int | None = None) -> DiffResult:
    """The change list from one revision to another (default: the latest against the one before it).

    The list recorded at import is returned when `from` is the revision `to` was compared
    with; any other pair is computed from the stored items, with today's production impact.
    """
    proj = find_project(session, project)
    to_rev = find_revision(session, proj, to_revision)
    previous = session.get(CutRevision, to_rev.previous_id) if to_rev.previous_id else None
    if from_revision is None or (previous is not None and from_revision == previous.number):
        return DiffResult(proj.code, previous.number if previous else None, to_rev.number, True,
                          stored_changes(session, to_rev.id))
    if from_revision == to_rev.number:
        raise InvalidInputError(f"--from and --to are both revision {from_revision}: nothing to compare")
    from_rev = find_revision(session, proj, from_revision)
    old, new = _revision_shot_cuts(session, from_rev.id), _revision_shot_cuts(session, to_rev.id)
    seen = _codes_before(session, proj.id, from_rev.number, set(new) - set(old))
    changes = _add_impact(session, proj.id, diff_cuts(old, new, seen))
    return DiffResult(proj.code, from_rev.number, to_rev.number, False, changes)


def _codes_before(session: Session, project_id: int, number: int, codes: set[str]) -> set[str]:
    if not codes:
        return set()
    rows = execute_custom_plan(session, """
        SELECT DISTINCT ci.shot_code FROM cut_revisions r JOIN cut_items ci ON ci.revision_id = r.id
        WHERE r.project_id = :p AND r.number < :n AND ci.shot_code = ANY(:codes)
    """, {"p": project_id, "n": number, "codes": sorted(codes)})
    return {row.shot_code for row in rows}


def _add_impact(session: Session, project_id: int, changes: list[ShotChange]) -> list[ShotChange]:
    shots = load_shots(session, project_id, {c.shot for c in changes if c.new_cut_in is not None})
    versions = current_shot_versions(session, [s.id for s in shots.values()], media=False)
    result = []
    for change in changes:
        shot = shots.get(change.shot)
        if change.new_cut_in is None or change.new_cut_out_incl is None:
            result.append(change)
            continue
        handles = shot.handles if shot else 0
        impact = impact_of(versions.get(shot.id) if shot else None, change.new_cut_in - handles,
                           change.new_cut_out_incl + handles)
        result.append(with_impact(change, impact))
    return result
