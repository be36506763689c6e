"""Regeneration plans: which shot renders to remake, in editorial order, and from what.

A plan takes the stale current `shot_render` versions (lineage and cut staleness alike),
one per shot output — the approved version when it is stale, else the latest — and says
for each what changes: every upstream input swapped to the current approved version of its
asset, continuity to the previous shot's new version when that one is remade too (which is
why a sequence runs in order), frames to the shot's current cut. Seeds and settings stay:
the recipe is the old one. Nothing here renders; workers do (backlot.services.worker).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from backlot.db.models import Asset, Sequence, Shot
from backlot.lineage.stale import find_stale_versions
from backlot.tracker.projects import find_project
from backlot.tracker.records import _Record
from backlot.tracker.versions import get_version
from backlot.errors import NotFoundError

SWAPPED_ROLES = ("base_model", "adapter", "concept_art", "init_image", "training_data")


@dataclass(frozen=True)
class Swap(_Record):
    role: str
    old: str
    new: str


@dataclass(frozen=True)
class PlanItem(_Record):
    shot: str
    sequence: str | None
    editorial_order: int | None
    version: str  # the stale version to remake
    version_id: int
    reason: str
    path: list[str]
    swaps: list[Swap] = field(default_factory=list)
    continuity: str = "unchanged"  # "new version of SHOT", "current version of SHOT" or "unchanged"
    continuity_from_previous_item: bool = False
    frames: tuple[int, int] = (0, 0)  # first, last (inclusive) of the current cut with handles
    seed: int | None = None


def plan_regeneration(session: Session, project: str, sequence: str | None = None) -> list[PlanItem]:
    """The stale shot renders of `project` (or one sequence), in editorial order."""
    proj = find_project(session, project)
    stale = [s for s in find_stale_versions(session, project) if s.kind == "shot_render"]
    stale_ids = {s.id for s in stale}
    by_asset: dict[str, object] = {}
    for item in stale:  # one per shot output: prefer the approved version
        current = by_asset.get(item.asset)
        if current is None or item.status == "approved":
            by_asset[item.asset] = item
    # A shot whose latest version is fresh has been remade already (it awaits review).
    by_asset = {asset: item for asset, item in by_asset.items()
                if get_version(session, f"{project}/{asset}@latest").id in stale_ids}
    shots = _shots_by_asset(session, proj.id, list(by_asset))
    items = []
    for asset, stale_item in by_asset.items():
        shot, seq = shots[asset]
        if sequence and seq != sequence:
            continue
        items.append(_item(session, stale_item, shot, seq))
    items.sort(key=lambda i: (i.editorial_order is None, i.editorial_order or 0, i.shot))
    return _link_continuity(session, proj.id, items)


def _shots_by_asset(session: Session, project_id: int, assets: list[str]) -> dict[str, tuple[Shot, str | None]]:
    rows = session.execute(
        select(Asset.name, Shot, Sequence.code).join(Shot, Shot.id == Asset.shot_id)
        .outerjoin(Sequence, Sequence.id == Shot.sequence_id)
        .where(Asset.project_id == project_id, Asset.name.in_(assets))).all()
    found = {name: (shot, seq) for name, shot, seq in rows}
    missing = set(assets) - set(found)
    if missing:
        raise NotFoundError(f"shot renders without a shot: {', '.join(sorted(missing))}")
    return found


def _item(session: Session, stale, shot: Shot, seq: str | None) -> PlanItem:
    version = get_version(session, stale.id)
    swaps = []
    for edge in version.inputs:
        if edge.role not in SWAPPED_ROLES:
            continue
        project, rest = edge.ref.split("/", 1)
        asset = rest.rsplit("@", 1)[0]
        try:
            approved = get_version(session, f"{project}/{asset}@approved")
        except NotFoundError:
            continue
        if approved.id != edge.version_id:
            swaps.append(Swap(edge.role, edge.ref, approved.ref))
    return PlanItem(shot.code, seq, shot.editorial_order, version.ref, version.id, stale.reason.input + " superseded by "
                    + str(stale.reason.superseded_by), stale.reason.path, swaps,
                    frames=(shot.cut_in - shot.handles, shot.cut_out + shot.handles),
                    seed=(version.recipe or {}).get("seed"))


def _link_continuity(session: Session, project_id: int, items: list[PlanItem]) -> list[PlanItem]:
    """Mark which items continue from the item just before them (the previous shot in the cut)."""
    order = [code for (code,) in session.execute(
        select(Shot.code).where(Shot.project_id == project_id).order_by(Shot.editorial_order.nulls_last(), Shot.code))]
    position = {code: i for i, code in enumerate(order)}
    planned = {i.shot for i in items}
    linked = []
    for item in items:
        has_continuity = any(e.role == "continuity" for e in get_version(session, item.version_id).inputs)
        previous = order[position[item.shot] - 1] if position[item.shot] > 0 else None
        if not has_continuity or previous is None:
            linked.append(item)
            continue
        from_plan = previous in planned
        note = f"new version of {previous}" if from_plan else f"current version of {previous}"
        linked.append(PlanItem(**{**item.__dict__, "continuity": note, "continuity_from_previous_item": from_plan}))
    return linked
