"""Writing the cut's shots to the tracker in bulk: create the missing, update the changed.

A cut touches hundreds of shots at once, so this writes with a few set-based statements
instead of one ORM round trip per shot; it records the same events the tracker does.
"""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from backlot.db.models import Event, EventKind, Project, Sequence, Shot
from backlot.editorial.sql import fetch_rows
from backlot.tracker.projects import ensure_sequence


class ShotPlan(NamedTuple):  # named tuples: a cut makes thousands, cheaply
    """What the cut says about one shot."""

    code: str
    sequence: str | None
    cut_in: int
    cut_out_incl: int
    handles: int
    editorial_order: int


class ExistingShot(NamedTuple):
    id: int
    code: str
    sequence_id: int | None
    cut_in: int
    cut_out_incl: int
    handles: int
    editorial_order: int | None


def load_shots(session: Session, project_id: int, codes: set[str] | None = None) -> dict[str, ExistingShot]:
    """The project's shots by code (only `codes`, when given)."""
    sql = "SELECT id, code, sequence_id, cut_in, cut_out, handles, editorial_order FROM shots WHERE project_id = %s"
    params: tuple = (project_id,)
    if codes is not None and len(codes) <= 500:  # beyond that, one scan of the project beats a long IN list
        sql += " AND code = ANY(%s)"
        params += (sorted(codes),)
    rows = fetch_rows(session, sql, params)
    return {row[1]: ExistingShot(*row) for row in rows if codes is None or row[1] in codes}


def create_shots(session: Session, proj: Project, plans: list[ShotPlan], actor: str) -> dict[str, int]:
    """Insert new shots (and their sequences); returns code -> id."""
    if not plans:
        return {}
    sequences = _sequence_ids(session, proj, {p.sequence for p in plans if p.sequence}, actor)
    rows = [{"project_id": proj.id, "code": p.code, "sequence_id": sequences.get(p.sequence) if p.sequence else None,
             "cut_in": p.cut_in, "cut_out": p.cut_out_incl, "handles": p.handles,
             "editorial_order": p.editorial_order} for p in plans]
    created = session.execute(insert(Shot).returning(Shot.id, Shot.code), rows).all()
    session.execute(insert(Event), [
        {"project_id": proj.id, "kind": EventKind.shot_created, "actor": actor,
         "payload": {"code": p.code, "sequence": p.sequence, "cut_in": p.cut_in, "cut_out": p.cut_out_incl,
                     "by": "cut import"}} for p in plans])
    return {code: shot_id for shot_id, code in created}


_UPDATE_SHOTS = """
    UPDATE shots AS s SET cut_in = u.cut_in, cut_out = u.cut_out, handles = u.handles,
           editorial_order = u.editorial_order, sequence_id = u.sequence_id
    FROM unnest(%s::int[], %s::int[], %s::int[], %s::int[], %s::int[], %s::int[])
         AS u(id, cut_in, cut_out, handles, editorial_order, sequence_id)
    WHERE s.id = u.id
"""  # one statement over arrays: hundreds of shots in one round trip and one plan


def update_shots(session: Session, proj: Project, changes: list[tuple[ExistingShot, ShotPlan]], actor: str) -> list[str]:
    """Write new cut ranges, handles, order and (when a shot has none) sequence; returns the codes changed."""
    codes, statement = shot_updates(changes, _sequence_ids(session, proj, sequences_wanted(changes), actor))
    if statement is not None:
        session.flush()
        with session.connection().connection.driver_connection.cursor() as cursor:
            cursor.execute(*statement)
    return codes


def sequences_wanted(changes: list[tuple[ExistingShot, ShotPlan]]) -> set[str]:
    """The sequences that shots without one get from the cut (update_shots finds or creates them)."""
    return {p.sequence for s, p in changes if p.sequence and s.sequence_id is None}


def shot_updates(changes: list[tuple[ExistingShot, ShotPlan]],
                 sequences: dict[str, int]) -> tuple[list[str], tuple[str, list[list[int | None]]] | None]:
    """The codes of the shots whose row changes, and the statement (SQL, parameters) that writes them
    (None when none does); `sequences`: the ids of sequences_wanted(changes)."""
    rows = []
    for shot, plan in changes:
        sequence_id = shot.sequence_id if shot.sequence_id is not None else sequences.get(plan.sequence)
        wanted = (plan.cut_in, plan.cut_out_incl, plan.handles, plan.editorial_order, sequence_id)
        if wanted != (shot.cut_in, shot.cut_out_incl, shot.handles, shot.editorial_order, shot.sequence_id):
            rows.append((shot.id,) + wanted)
    by_id = {shot.id: shot.code for shot, _ in changes}
    codes = [by_id[row[0]] for row in rows]
    return codes, ((_UPDATE_SHOTS, [list(column) for column in zip(*rows)]) if rows else None)


def clear_order(session: Session, shot_ids: list[int]) -> None:
    """Shots the cut no longer uses lose their editorial order (their range is kept)."""
    if shot_ids:
        session.connection().execute(update(Shot.__table__).where(Shot.__table__.c.id.in_(shot_ids))
                                     .values(editorial_order=None))


def _sequence_ids(session: Session, proj: Project, codes: set[str], actor: str) -> dict[str, int]:
    if not codes:
        return {}
    found = dict(session.execute(select(Sequence.code, Sequence.id)
                                 .where(Sequence.project_id == proj.id, Sequence.code.in_(sorted(codes)))).all())
    for code in sorted(codes - set(found)):
        found[code] = ensure_sequence(session, proj, code, actor).id
    return found
