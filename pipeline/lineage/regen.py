"""Regeneration plans over the whole lineage graph: which stale versions to remake, from what,
in which order.

Every stale current version whose recipe can be replayed is a plan item: adapters (retrained
from their training recipe on the current approved training data and base model) and shot
renders (re-rendered from their recipe). Versions made by people (concept art, registered
base models) cannot be replayed: a stale one is listed as `manual`, and what depends on it
waits. An item's inputs are swapped to the current approved version of each input's asset, or
to the new version another item will make (an adapter's shots use the retrained adapter);
continuity comes from the shot before it in editorial order (its new version when that shot
is remade too). Items come in topological order: adapters first, then shots in editorial
order. An asset whose latest version is a fresh remake awaiting review is left alone (the
stale list says so too), and a shot that would use an adapter awaiting review waits for it.

An item's `key` identifies what it will make: the version it replaces and the exact upstream
it will use (version ids, or the keys of the items that make them). Nothing here runs
anything; workers do (backlot.services.worker).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.orm import Session

from backlot.lineage.stale import StaleVersion, find_stale_versions
from backlot.tracker.projects import find_project
from backlot.tracker.records import _Record

SWAPPED_ROLES = ("base_model", "adapter", "concept_art", "init_image", "training_data")
# What a version's recipe must say for Backlot to replay it, and the plan action that does.
REPLAYABLE = {("adapter", "lora_training"): "retrain", ("shot_render", "shot_render"): "render"}


@dataclass(frozen=True)
class Swap(_Record):
    """An input the remake takes from elsewhere: `new` is a version ref, or the new version of
    an asset that the plan item `from_item` makes."""

    role: str
    old: str
    new: str
    old_version_id: int
    new_version_id: int | None = None
    from_item: str | None = None


@dataclass(frozen=True)
class PlanItem(_Record):
    key: str  # what it makes: the version it replaces and the exact upstream it uses
    action: str  # "retrain" (an adapter), "render" (a shot) or "manual" (made by people: not replayable)
    asset: str
    kind: str
    version: str  # the stale version to remake
    version_id: int
    reason: str
    path: list[str]
    swaps: list[Swap] = field(default_factory=list)
    waits_for: list[str] = field(default_factory=list)  # keys of the items it needs first
    blocked: str | None = None  # why it cannot run now (a manual input, an adapter awaiting review)
    shot: str | None = None
    sequence: str | None = None
    editorial_order: int | None = None
    continuity: str = "none"  # for shots: "none", "new version of SHOT", or the version ref it continues from
    continuity_version_id: int | None = None
    continuity_from_item: str | None = None
    frames: tuple[int, int] | None = None  # first, last (inclusive) of the current cut with handles
    seed: int | None = None


@dataclass(frozen=True)
class _AssetState:
    asset_id: int
    asset: str  # PROJECT/NAME
    approved_id: int | None
    approved_ref: str | None


@dataclass(frozen=True)
class _ShotInfo:
    code: str
    sequence: str | None
    order: int | None
    first: int
    last: int
    previous: str | None  # the shot before it in editorial order


# The asset state of each input version: its asset's approved version.
_ASSETS_SQL = text("""
SELECT iv.id AS input_id, a.id AS asset_id, p.code || '/' || a.name AS asset, av.id AS approved_id,
       p.code || '/' || a.name || '@' || av.number AS approved_ref
FROM versions iv JOIN assets a ON a.id = iv.asset_id JOIN projects p ON p.id = a.project_id
LEFT JOIN versions av ON av.asset_id = a.id AND av.number = a.approved_number
WHERE iv.id = ANY(:ids)
""")

# Shots of render assets, with the shot before each in editorial order (one pass over the
# project's shots: an index walk per shot would cost shots x remade shots).
_SHOTS_SQL = text("""
WITH ordered AS (
    SELECT s.id, s.code, s.sequence_id, s.editorial_order, s.cut_in - s.handles AS first,
           s.cut_out + s.handles AS last,
           lag(s.code) OVER (ORDER BY s.editorial_order NULLS LAST, s.code) AS previous
    FROM shots s WHERE s.project_id = :project_id
)
SELECT a.name AS asset, o.code, q.code AS sequence, o.editorial_order, o.first, o.last, o.previous
FROM assets a JOIN ordered o ON o.id = a.shot_id LEFT JOIN sequences q ON q.id = o.sequence_id
WHERE a.project_id = :project_id AND a.name = ANY(:assets)
""")

# What planning needs of the versions to remake: recipe kind and seed, and their inputs.
_TARGETS_SQL = text("""
SELECT v.id, r.body->>'kind' AS recipe_kind, (r.body->>'seed')::bigint AS seed
FROM versions v LEFT JOIN recipes r ON r.id = v.recipe_id WHERE v.id = ANY(:ids)
""")
_TARGET_INPUTS_SQL = text("""
SELECT vi.version_id, vi.role::text AS role, vi.input_id, p.code || '/' || a.name || '@' || iv.number AS ref
FROM version_inputs vi JOIN versions iv ON iv.id = vi.input_id JOIN assets a ON a.id = iv.asset_id
JOIN projects p ON p.id = a.project_id
WHERE vi.version_id = ANY(:ids) ORDER BY vi.version_id, vi.role, vi.input_id
""")

# The current version (approved, else latest) of given assets, and whether the latest awaits review.
_CURRENT_SQL = text("""
SELECT a.name AS asset, coalesce(av.id, lv.id) AS id,
       p.code || '/' || a.name || '@' || coalesce(av.number, lv.number) AS ref
FROM assets a JOIN projects p ON p.id = a.project_id
LEFT JOIN versions av ON av.asset_id = a.id AND av.number = a.approved_number
LEFT JOIN versions lv ON lv.asset_id = a.id AND lv.number = a.latest_number
WHERE a.project_id = :project_id AND a.name = ANY(:assets) AND lv.id IS NOT NULL
""")


def plan_regeneration(session: Session, project: str, sequence: str | None = None) -> list[PlanItem]:
    """The stale versions of `project` to remake (or of one sequence and what its shots need),
    in the order they can run."""
    proj = find_project(session, project)
    stale = find_stale_versions(session, project)
    targets = _targets(stale)
    pending = {s.asset: (s.awaiting_review_id, s.awaiting_review) for s in stale if s.awaiting_review}
    records = _target_records(session, [t.id for t in targets.values()])
    inputs = {i.version_id for r in records.values() for i in r.inputs}
    states = {row.input_id: _AssetState(row.asset_id, row.asset, row.approved_id, row.approved_ref)
              for row in session.execute(_ASSETS_SQL, {"ids": sorted(inputs)})}
    shots = _shots(session, proj.id, [a for a, t in targets.items() if t.kind == "shot_render"])
    neighbours = _neighbour_versions(session, proj.id, shots, targets, pending)
    builder = _Builder(project, targets, records, states, shots, neighbours, pending)
    items = builder.build()
    if sequence is not None:
        items = _only_sequence(items, sequence)
    return items


@dataclass(frozen=True)
class _Input:
    role: str
    version_id: int
    ref: str


@dataclass(frozen=True)
class _Target:
    id: int
    recipe_kind: str | None
    seed: int | None
    inputs: list[_Input]


def _target_records(session: Session, ids: list[int]) -> dict[int, _Target]:
    """The recipe kind, seed and inputs of the versions to remake, in two queries."""
    if not ids:
        return {}
    inputs: dict[int, list[_Input]] = {i: [] for i in ids}
    for r in session.execute(_TARGET_INPUTS_SQL, {"ids": ids}):
        inputs[r.version_id].append(_Input(r.role, r.input_id, r.ref))
    return {r.id: _Target(r.id, r.recipe_kind, r.seed, inputs[r.id])
            for r in session.execute(_TARGETS_SQL, {"ids": ids})}


def _targets(stale: list[StaleVersion]) -> dict[str, StaleVersion]:
    """One stale version per asset to remake, the approved one first; none where a fresh remake awaits review."""
    chosen: dict[str, StaleVersion] = {}
    for item in stale:
        if item.awaiting_review:
            continue
        current = chosen.get(item.asset)
        if current is None or item.status == "approved":
            chosen[item.asset] = item
    return chosen


def _shots(session: Session, project_id: int, assets: list[str]) -> dict[str, _ShotInfo]:
    if not assets:
        return {}
    rows = session.execute(_SHOTS_SQL, {"project_id": project_id, "assets": assets})
    return {r.asset: _ShotInfo(r.code, r.sequence, r.editorial_order, r.first, r.last, r.previous) for r in rows}


def _render_asset(shot: str, output: str) -> str:
    return f"shots/{shot}/{output}"


def _output_of(asset: str) -> str:
    return asset.split("/", 2)[2] if asset.count("/") >= 2 else "main"


def _neighbour_versions(session: Session, project_id: int, shots: dict[str, _ShotInfo],
                        targets: dict[str, StaleVersion], pending: dict[str, tuple[int, str]]) -> dict[str, tuple[int, str]]:
    """For each previous-shot render asset not remade by the plan: the version continuity uses
    (a fresh remake awaiting review, else the approved, else the latest)."""
    wanted = {_render_asset(info.previous, _output_of(asset)) for asset, info in shots.items() if info.previous}
    wanted -= set(targets)
    if not wanted:
        return {}
    found = {r.asset: (r.id, r.ref) for r in session.execute(_CURRENT_SQL, {"project_id": project_id,
                                                                            "assets": sorted(wanted)})}
    return {**found, **{asset: pending[asset] for asset in wanted if asset in pending}}


class _Builder:
    """Turns the chosen stale versions into plan items, upstream first."""

    def __init__(self, project, targets, records, states, shots, neighbours, pending):
        self.project, self.targets, self.records, self.states = project, targets, records, states
        self.shots, self.neighbours, self.pending = shots, neighbours, pending
        self.items: dict[str, PlanItem] = {}  # by asset name

    def build(self) -> list[PlanItem]:
        for asset in self._order():
            self.items[asset] = self._item(asset)
        return list(self.items.values())

    def _order(self) -> list[str]:
        def rank(asset: str):
            target = self.targets[asset]
            shot = self.shots.get(asset)
            if target.kind == "shot_render" and shot is not None:
                return (2, shot.order is None, shot.order or 0, shot.code, asset)
            return (0 if target.kind != "adapter" else 1, False, 0, "", asset)
        return sorted(self.targets, key=rank)

    def _item(self, asset: str) -> PlanItem:
        stale = self.targets[asset]
        record: _Target = self.records[stale.id]
        action = REPLAYABLE.get((stale.kind, record.recipe_kind), "manual")
        swaps, waits, blocked = self._swaps(record)
        extra: dict = {}
        if stale.kind == "shot_render":
            extra, cont_waits, cont_blocked = self._shot_fields(asset, record)
            waits += cont_waits
            blocked = blocked or cont_blocked
        if action == "manual":
            blocked = f"made by people: publish a new version of {self.project}/{asset}"
        key = _key(record.id, swaps, extra.get("continuity_version_id"), extra.get("continuity_from_item"),
                   extra.get("frames"))
        return PlanItem(key, action, asset, stale.kind, stale.ref, stale.id, _describe(stale), stale.reason.path,
                        swaps, sorted(set(waits)), blocked, seed=record.seed, **extra)

    def _swaps(self, record: _Target) -> tuple[list[Swap], list[str], str | None]:
        swaps, waits, blocked = [], [], None
        for edge in record.inputs:
            if edge.role not in SWAPPED_ROLES:
                continue
            state = self.states[edge.version_id]
            name = state.asset.split("/", 1)[1]
            upstream = self.items.get(name) if state.asset.startswith(f"{self.project}/") else None
            if upstream is not None:
                swaps.append(Swap(edge.role, edge.ref, f"new version of {state.asset}", edge.version_id,
                                  from_item=upstream.key))
                waits.append(upstream.key)
                if upstream.blocked:
                    blocked = f"waits for {upstream.version}: {upstream.blocked}"
            elif edge.role == "adapter" and upstream is None and name in self.pending:
                blocked = f"waits for review of {self.pending[name][1]}"
            elif state.approved_id is not None and state.approved_id != edge.version_id:
                swaps.append(Swap(edge.role, edge.ref, state.approved_ref, edge.version_id, state.approved_id))
        return swaps, waits, blocked

    def _shot_fields(self, asset: str, record: _Target) -> tuple[dict, list[str], str | None]:
        info = self.shots.get(asset)
        if info is None:
            return {}, [], f"{self.targets[asset].ref} belongs to no shot: nothing tells its frames or neighbours"
        fields = {"shot": info.code, "sequence": info.sequence, "editorial_order": info.order,
                  "frames": (info.first, info.last)}
        if not any(e.role == "continuity" for e in record.inputs):
            return {**fields, "continuity": "none"}, [], None
        if info.previous is None:
            return {**fields, "continuity": "none"}, [], None
        before = _render_asset(info.previous, _output_of(asset))
        upstream = self.items.get(before)
        if upstream is not None:
            blocked = f"waits for {upstream.version}: {upstream.blocked}" if upstream.blocked else None
            return ({**fields, "continuity": f"new version of {info.previous}", "continuity_from_item": upstream.key},
                    [upstream.key], blocked)
        version = self.neighbours.get(before)
        if version is None:
            return {**fields, "continuity": "none"}, [], None
        return {**fields, "continuity": version[1], "continuity_version_id": version[0]}, [], None


def _describe(stale: StaleVersion) -> str:
    return f"{stale.reason.input} superseded by {stale.reason.superseded_by}"


def _key(source: int, swaps: list[Swap], continuity_version: int | None, continuity_item: str | None,
         frames: tuple[int, int] | None) -> str:
    body = {"source": source, "frames": frames,
            "inputs": sorted([s.role, s.old_version_id, s.new_version_id, s.from_item] for s in swaps),
            "continuity": [continuity_version, continuity_item]}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:20]


def _only_sequence(items: list[PlanItem], sequence: str) -> list[PlanItem]:
    """The shots of one sequence, and the items they wait for (transitively)."""
    by_key = {i.key: i for i in items}
    keep = {i.key for i in items if i.sequence == sequence}
    frontier = list(keep)
    while frontier:
        for needed in by_key[frontier.pop()].waits_for:
            if needed not in keep:
                keep.add(needed)
                frontier.append(needed)
    return [i for i in items if i.key in keep]
