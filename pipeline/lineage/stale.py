"""Stale versions (DESIGN.md invariant 4, lineage part).

A version is stale when one of its inputs has been superseded by a newer approved version
of the same asset (or by any newer, not rejected, version under the project's `latest`
policy), or when one of its inputs is itself stale. `regenerated_from` edges do not
count: a regenerated version is expected to replace the one it came from.

Only current versions are reported: the latest and the approved of each asset.

The database does the work in one recursive query. It starts from the input edges of
live versions whose input is superseded (a partial index over the trigger-maintained
`live_inputs` table) and walks down through live versions only: a path through a
superseded version is already reported at that version, closer to the consumer. So the
cost follows the affected part of the graph, not the size of the database.
`regenerated_from` edges never enter `live_inputs`, since they carry no staleness.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.orm import Session

from pipeline.tracker.projects import find_project
from pipeline.tracker.records import _Record

# The LATERAL ... OFFSET 0 subqueries keep PostgreSQL on index lookups per reached row: the
# recursive CTE's row estimate is large and fixed, which would otherwise pick hash joins
# that scan whole tables, making the cost follow the database instead of the answer.
_STALE_SQL = text("""
WITH RECURSIVE reach(version_id, via_id, role) AS (
    SELECT li.version_id, li.input_id, li.role FROM live_inputs li
    WHERE li.project_id = :project_id AND li.input_superseded
  UNION
    SELECT nxt.version_id, nxt.input_id, nxt.role FROM reach r
    CROSS JOIN LATERAL (SELECT li.version_id, li.input_id, li.role FROM live_inputs li
                        WHERE li.input_id = r.version_id OFFSET 0) nxt
)
SELECT r.version_id, r.via_id, r.role::text AS role, x.via_superseded, x.is_current, x.in_project
FROM reach r CROSS JOIN LATERAL (
    SELECT iv.superseded AS via_superseded,
           (v.number = a.latest_number OR v.number IS NOT DISTINCT FROM a.approved_number) AS is_current,
           v.project_id = :project_id AS in_project
    FROM versions v JOIN assets a ON a.id = v.asset_id, versions iv
    WHERE v.id = r.version_id AND iv.id = r.via_id OFFSET 0
) x
""")

_DESCRIBE_SQL = text("""
SELECT v.id, p.code || '/' || a.name || '@' || v.number AS ref, a.name AS asset, a.kind::text AS kind,
       v.number, v.status::text AS status,
       CASE WHEN v.superseded THEN p.code || '/' || a.name || '@' ||
            CASE WHEN p.stale_policy = 'approved' THEN a.approved_number
                 ELSE backlot_asset_pointer(a.id, p.stale_policy) END END AS superseded_by
FROM versions v JOIN assets a ON a.id = v.asset_id JOIN projects p ON p.id = v.project_id
WHERE v.id = ANY(:ids)
""")


@dataclass(frozen=True)
class StaleReason(_Record):
    input: str  # the superseded version at the root of the chain
    role: str  # how the first step of the path used it
    superseded_by: str
    path: list[str] = field(default_factory=list)  # from the stale version back to the superseded input


@dataclass(frozen=True)
class StaleVersion(_Record):
    id: int
    ref: str
    asset: str
    kind: str
    number: int
    status: str
    reason: StaleReason


def find_stale_versions(session: Session, project: str) -> list[StaleVersion]:
    """The current versions of `project` that are stale, each with its nearest reason."""
    proj = find_project(session, project)
    rows = session.execute(_STALE_SQL, {"project_id": proj.id}).all()
    if not rows:
        return []
    vias: dict[int, list] = {}
    current: set[int] = set()
    for row in rows:
        vias.setdefault(row.version_id, []).append(row)
        if row.is_current and row.in_project:
            current.add(row.version_id)
    best = _shortest_paths(vias)
    wanted = set(current)
    for version_id in current:
        wanted.update(best[version_id][1])
    info = {r.id: r for r in session.execute(_DESCRIBE_SQL, {"ids": list(wanted)})}
    result = []
    for version_id in sorted(current, key=lambda i: (info[i].asset, info[i].number)):
        _dist, chain, first_role = best[version_id]
        root = chain[-1]
        reason = StaleReason(info[root].ref, first_role, info[root].superseded_by, [info[i].ref for i in chain])
        v = info[version_id]
        result.append(StaleVersion(version_id, v.ref, v.asset, v.kind, v.number, v.status, reason))
    return result


def _shortest_paths(vias: dict[int, list]) -> dict[int, tuple[int, list[int], str]]:
    """For each reached version: (steps, chain of ids down to a superseded input, role of first step).

    Inputs always have smaller ids than their consumers, so visiting ids in ascending order
    sees every input's answer before its consumers'.
    """
    best: dict[int, tuple[int, list[int], str]] = {}
    for version_id in sorted(vias):
        options = []
        for row in vias[version_id]:
            if row.via_superseded:
                options.append((1, row.via_id, [version_id, row.via_id], row.role))
            elif row.via_id in best:
                dist, chain, _ = best[row.via_id]
                options.append((dist + 1, row.via_id, [version_id, *chain], row.role))
        dist, _, chain, role = min(options, key=lambda o: (o[0], o[1]))
        best[version_id] = (dist, chain, role)
    return best
