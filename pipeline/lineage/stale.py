"""Stale versions (invariant 4 of docs/architecture.md, lineage part; rules in docs/stale.md).

A version is stale when one of its inputs has been superseded by a newer approved version
of the same asset with other content (or by any newer, not rejected, version under the
project's `latest` policy), unless that newer version is made from the consumer itself, or
when one of its inputs is itself stale. `regenerated_from` edges do not count: a
regenerated version is expected to replace the one it came from. The database keeps these
flags (migrations 0001 and 0007).

Only current versions are reported: the latest and the approved of each asset.

The database does the work in one recursive query. It starts from the input edges of
live versions whose input is superseded (a partial index over the trigger-maintained
`live_inputs` table) and walks down through live versions only: a path through a
superseded version is already reported at that version, closer to the consumer. So the
cost follows the affected part of the graph, not the size of the database.
`regenerated_from` edges never enter `live_inputs`, since they carry no staleness.

Cut part: a current shot_render version that does not cover its shot's cut range with
handles (its `metadata.frame_range` against `shots.cut_in - handles .. cut_out + handles`)
is stale too, and so is what was made from it. The trigger-maintained `cut_uncovered`
table (migration 0002) holds exactly those versions, per project; the query starts from
them as well (their ids passed in), so the cost still follows the affected set.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.orm import Session

from backlot.tracker.projects import find_project
from backlot.tracker.records import _Record

# The LATERAL ... OFFSET 0 subqueries keep PostgreSQL on index lookups per reached row: the
# recursive CTE's row estimate is large and fixed, which would otherwise pick hash joins
# that scan whole tables, making the cost follow the database instead of the answer.
_WALK = """
WITH RECURSIVE reach(version_id, via_id, role) AS (
    SELECT li.version_id, li.input_id, li.role FROM live_inputs li
    WHERE li.project_id = :project_id AND li.input_superseded
  UNION{extra_seeds}
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
"""
_STALE_SQL = text(_WALK.format(extra_seeds=""))

# The same walk, also started from the consumers of versions short of their cut (:uncovered).
_STALE_WITH_CUT_SQL = text(_WALK.format(extra_seeds="""
    SELECT nxt.version_id, nxt.input_id, nxt.role FROM unnest(CAST(:uncovered AS bigint[])) u(id)
    CROSS JOIN LATERAL (SELECT li.version_id, li.input_id, li.role FROM live_inputs li
                        WHERE li.input_id = u.id OFFSET 0) nxt
  UNION"""))

# Current shot versions that miss frames of their shot's cut (handles included).
_UNCOVERED_SQL = text("""
SELECT cu.version_id, s.code AS shot, cu.need_first, cu.need_last, cu.have_first, cu.have_last
FROM cut_uncovered cu JOIN shots s ON s.id = cu.shot_id
WHERE cu.project_id = :project_id
""")

# Per asset of the given versions: its latest version, when that is wip or in review.
_PENDING_SQL = text("""
SELECT a.name AS asset, v.id, p.code || '/' || a.name || '@' || v.number AS ref
FROM assets a JOIN projects p ON p.id = a.project_id
JOIN versions v ON v.asset_id = a.id AND v.number = a.latest_number
WHERE a.id IN (SELECT asset_id FROM versions WHERE id = ANY(:ids)) AND v.status IN ('wip', 'review')
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
class CutShortfall(_Record):
    """Why a shot version misses its cut: the frames needed and the frames it holds (inclusive)."""

    shot: str
    need_first: int  # cut_in - handles
    need_last: int  # cut_out + handles
    have_first: int | None  # None: the version's frame_range is malformed
    have_last: int | None


@dataclass(frozen=True)
class StaleReason(_Record):
    input: str  # the version at the root of the chain: a superseded input, or a version short of its cut
    role: str  # how the first step of the path used it ("cut" when the version itself misses frames)
    superseded_by: str  # the superseding version; for cause "cut", what the cut needs, in words
    path: list[str] = field(default_factory=list)  # from the stale version back to the root
    cause: str = "superseded"  # "superseded" (lineage) or "cut" (the root does not cover its shot's cut)
    cut: CutShortfall | None = None  # for cause "cut"


@dataclass(frozen=True)
class StaleVersion(_Record):
    id: int
    ref: str
    asset: str
    kind: str
    number: int
    status: str
    reason: StaleReason
    # A newer version of the same asset that is not stale and waits for review (wip or review):
    # the remake exists, a person has to approve it. Regeneration leaves such assets alone.
    awaiting_review: str | None = None
    awaiting_review_id: int | None = None


def find_stale_versions(session: Session, project: str) -> list[StaleVersion]:
    """The current versions of `project` that are stale, each with its nearest reason."""
    proj = find_project(session, project)
    uncovered = {r.version_id: r for r in session.execute(_UNCOVERED_SQL, {"project_id": proj.id})}
    rows = _walk(session, proj.id, sorted(uncovered))
    if not rows and not uncovered:
        return []
    vias: dict[int, list] = {}
    current: set[int] = set(uncovered)  # the table holds current versions only
    for row in rows:
        vias.setdefault(row.version_id, []).append(row)
        if row.is_current and row.in_project:
            current.add(row.version_id)
    best = _shortest_paths(vias, set(uncovered))
    wanted = set(current)
    for version_id in current:
        wanted.update(best[version_id][1])
    info = {r.id: r for r in session.execute(_DESCRIBE_SQL, {"ids": list(wanted)})}
    result = []
    for version_id in sorted(current, key=lambda i: (info[i].asset, info[i].number)):
        _dist, chain, first_role, cause = best[version_id]
        root = chain[-1]
        refs = [info[i].ref for i in chain]
        if cause == "cut":
            shortfall = _shortfall(uncovered[root])
            reason = StaleReason(info[root].ref, first_role, _describe_shortfall(shortfall), refs, "cut", shortfall)
        else:
            reason = StaleReason(info[root].ref, first_role, info[root].superseded_by, refs)
        v = info[version_id]
        result.append(StaleVersion(version_id, v.ref, v.asset, v.kind, v.number, v.status, reason))
    return _mark_awaiting_review(session, result, current)


def _mark_awaiting_review(session: Session, stale: list[StaleVersion], stale_ids: set[int]) -> list[StaleVersion]:
    """Mark stale versions whose asset's latest version is fresh and waits for review."""
    pending = {r.asset: r for r in session.execute(_PENDING_SQL, {"ids": sorted(stale_ids)})
               if r.id not in stale_ids}
    return [dataclasses.replace(s, awaiting_review=pending[s.asset].ref, awaiting_review_id=pending[s.asset].id)
            if s.asset in pending else s for s in stale]


def _walk(session: Session, project_id: int, uncovered: list[int]) -> list:
    """The reach rows; with versions short of their cut, from their consumers too.

    The larger query's row estimate crosses PostgreSQL's JIT threshold, and compiling costs
    more than the few index lookups the query does; and a generic plan (once the driver has
    prepared it) cannot see how many ids the array holds. So for that one statement JIT is
    off and the plan is made for its parameters; both settings are restored after it.
    """
    if not uncovered:
        return session.execute(_STALE_SQL, {"project_id": project_id}).all()
    saved = session.execute(text(
        "SELECT current_setting('jit'), current_setting('plan_cache_mode'), set_config('jit', 'off', true), "
        "set_config('plan_cache_mode', 'force_custom_plan', true)")).one()
    rows = session.execute(_STALE_WITH_CUT_SQL, {"project_id": project_id, "uncovered": uncovered}).all()
    session.execute(text("SELECT set_config('jit', :jit, true), set_config('plan_cache_mode', :mode, true)"),
                    {"jit": saved[0], "mode": saved[1]})
    return rows


def _shortest_paths(vias: dict[int, list],
                    roots: set[int] | frozenset[int] = frozenset()) -> dict[int, tuple[int, list[int], str, str]]:
    """For each reached version: (steps, chain of ids down to the root, role of first step, cause).

    Roots are versions stale in themselves (short of their cut): zero steps. Inputs always
    have smaller ids than their consumers, so visiting ids in ascending order sees every
    input's answer before its consumers'.
    """
    best: dict[int, tuple[int, list[int], str, str]] = {v: (0, [v], "cut", "cut") for v in roots}
    for version_id in sorted(vias):
        if version_id in roots:
            continue
        options = []
        for row in vias[version_id]:
            if row.via_superseded:
                options.append((1, row.via_id, [version_id, row.via_id], row.role, "superseded"))
            elif row.via_id in best:
                dist, chain, _, cause = best[row.via_id]
                options.append((dist + 1, row.via_id, [version_id, *chain], row.role, cause))
        dist, _, chain, role, cause = min(options, key=lambda o: (o[0], o[1]))
        best[version_id] = (dist, chain, role, cause)
    return best


def _shortfall(row) -> CutShortfall:
    return CutShortfall(row.shot, row.need_first, row.need_last, row.have_first, row.have_last)


def _describe_shortfall(s: CutShortfall) -> str:
    held = f"holds {s.have_first}-{s.have_last}" if s.have_first is not None else "has a malformed frame_range"
    return f"cut of {s.shot} needs {s.need_first}-{s.need_last}, version {held}"
