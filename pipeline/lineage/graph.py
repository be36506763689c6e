"""The lineage graph: what a version was made from (inputs) and what was made from it (outputs).

Walks follow the production roles by default: every role but `regenerated_from`, which links a
remake to the version it replaced rather than to something it was made from. That chain is the
version's history (`get_history`); pass `roles` to walk other roles, or all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from sqlalchemy import text
from sqlalchemy.orm import Session

from backlot.db.models import InputRole
from backlot.errors import InvalidInputError
from backlot.refs import VersionRef
from backlot.tracker.choices import parse_role
from backlot.tracker.records import _Record
from backlot.tracker.versions import resolve_version

# One recursive query per walk. UNION (not UNION ALL) drops edges already found, so a
# diamond-shaped graph costs its number of edges, not its number of paths. The role filter is
# in both halves: a walk never passes through an edge of a role it does not follow.
_WALK_SQL = """
WITH RECURSIVE walk(version_id, input_id, role) AS (
    SELECT version_id, input_id, role FROM version_inputs
    WHERE {start} = :root AND role = ANY(CAST(:roles AS input_role[]))
  UNION
    SELECT e.version_id, e.input_id, e.role FROM walk w JOIN version_inputs e ON e.{join_to} = w.{frontier}
    WHERE :transitive AND e.role = ANY(CAST(:roles AS input_role[]))
)
SELECT w.version_id, w.input_id, w.role::text,
       pc.code || '/' || ac.name || '@' || vc.number AS version_ref,
       pi.code || '/' || ai.name || '@' || vi.number AS input_ref,
       vi.status::text AS input_status, vc.status::text AS version_status
FROM walk w
JOIN versions vc ON vc.id = w.version_id JOIN assets ac ON ac.id = vc.asset_id JOIN projects pc ON pc.id = vc.project_id
JOIN versions vi ON vi.id = w.input_id JOIN assets ai ON ai.id = vi.asset_id JOIN projects pi ON pi.id = vi.project_id
"""


@dataclass(frozen=True)
class LineageEdge(_Record):
    """`version` was made from `input` in `role`; depth 1 is adjacent to the version asked about."""

    version: str
    input: str
    role: str
    depth: int
    version_id: int
    input_id: int
    status: str  # status of the far end (the input when walking up, the output when walking down)


ALL_ROLES: tuple[str, ...] = tuple(r.value for r in InputRole)
HISTORY_ROLE = InputRole.regenerated_from.value
# What a version was made from: every role but the regeneration history.
PRODUCTION_ROLES: tuple[str, ...] = tuple(r for r in ALL_ROLES if r != HISTORY_ROLE)


def parse_roles(roles: Sequence[str | InputRole] | None) -> tuple[str, ...]:
    """The roles a walk follows: None means the production roles; names are checked."""
    if roles is None:
        return PRODUCTION_ROLES
    if isinstance(roles, (str, InputRole)):
        roles = [roles]
    parsed = tuple(dict.fromkeys(parse_role(r).value for r in roles))
    if not parsed:
        raise InvalidInputError(f"give at least one input role: {', '.join(ALL_ROLES)}")
    return parsed


def get_inputs(session: Session, ref: str | VersionRef | int, *, transitive: bool = False,
               roles: Sequence[str | InputRole] | None = None) -> list[LineageEdge]:
    """Edges upstream of a version: its inputs, and with `transitive` their inputs, and so on.

    Only edges of `roles` are followed (default: the production roles, all but `regenerated_from`).
    """
    return _walk(session, ref, upstream=True, transitive=transitive, roles=parse_roles(roles))


def get_outputs(session: Session, ref: str | VersionRef | int, *, transitive: bool = False,
                roles: Sequence[str | InputRole] | None = None) -> list[LineageEdge]:
    """Edges downstream of a version: what was made from it (and, transitively, from those).

    Only edges of `roles` are followed (default: the production roles, all but `regenerated_from`).
    """
    return _walk(session, ref, upstream=False, transitive=transitive, roles=parse_roles(roles))


def get_history(session: Session, ref: str | VersionRef | int, *, downstream: bool = False) -> list[LineageEdge]:
    """The `regenerated_from` chain of a version, nearest first (the oldest version last).

    `film/shots/sh010/main@3` remade from `@2`, itself remade from `@1`, gives the edges
    `@3 <- @2` (depth 1) then `@2 <- @1` (depth 2). With `downstream`, the remakes made from
    the version instead (`@1 -> @2`, then `@2 -> @3`: the newest last).
    """
    return _walk(session, ref, upstream=not downstream, transitive=True, roles=(HISTORY_ROLE,))


def _walk(session: Session, ref: str | VersionRef | int, *, upstream: bool, transitive: bool,
          roles: tuple[str, ...]) -> list[LineageEdge]:
    root = resolve_version(session, ref).id
    sql = _WALK_SQL.format(start="version_id" if upstream else "input_id",
                           join_to="version_id" if upstream else "input_id",
                           frontier="input_id" if upstream else "version_id")
    rows = session.execute(text(sql), {"root": root, "transitive": transitive, "roles": list(roles)}).all()
    depth = _depths(root, rows, upstream)
    edges = [
        LineageEdge(r.version_ref, r.input_ref, r.role, depth[r.version_id if upstream else r.input_id] + 1,
                    r.version_id, r.input_id, r.input_status if upstream else r.version_status)
        for r in rows
    ]
    return sorted(edges, key=lambda e: (e.depth, e.version_id, e.input_id, e.role))


def _depths(root: int, rows, upstream: bool) -> dict[int, int]:
    """Shortest distance from the root to each far end (the graph is a DAG: ids only grow downstream)."""
    depth = {root: 0}
    near, far = ("version_id", "input_id") if upstream else ("input_id", "version_id")
    ordered = sorted(rows, key=lambda r: getattr(r, near), reverse=upstream)
    for r in ordered:
        d = depth.get(getattr(r, near))
        if d is not None:
            key = getattr(r, far)
            depth[key] = min(depth.get(key, d + 1), d + 1)
    return depth
