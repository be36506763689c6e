"""The lineage graph: what a version was made from (inputs) and what was made from it (outputs)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

from backlot.refs import VersionRef
from backlot.tracker.records import _Record
from backlot.tracker.versions import resolve_version

# One recursive query per walk. UNION (not UNION ALL) drops edges already found, so a
# diamond-shaped graph costs its number of edges, not its number of paths.
_WALK_SQL = """
WITH RECURSIVE walk(version_id, input_id, role) AS (
    SELECT version_id, input_id, role FROM version_inputs WHERE {start} = :root
  UNION
    SELECT e.version_id, e.input_id, e.role FROM walk w JOIN version_inputs e ON e.{join_to} = w.{frontier}
    WHERE :transitive
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


def get_inputs(session: Session, ref: str | VersionRef | int, *, transitive: bool = False) -> list[LineageEdge]:
    """Edges upstream of a version: its inputs, and with `transitive` their inputs, and so on."""
    return _walk(session, ref, upstream=True, transitive=transitive)


def get_outputs(session: Session, ref: str | VersionRef | int, *, transitive: bool = False) -> list[LineageEdge]:
    """Edges downstream of a version: what was made from it (and, transitively, from those)."""
    return _walk(session, ref, upstream=False, transitive=transitive)


def _walk(session: Session, ref: str | VersionRef | int, *, upstream: bool, transitive: bool) -> list[LineageEdge]:
    root = resolve_version(session, ref).id
    sql = _WALK_SQL.format(start="version_id" if upstream else "input_id",
                           join_to="version_id" if upstream else "input_id",
                           frontier="input_id" if upstream else "version_id")
    rows = session.execute(text(sql), {"root": root, "transitive": transitive}).all()
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
