"""Assets: the things that get versions."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backlot.db.models import Asset, AssetKind, EventKind, Project, Shot
from backlot.errors import ConflictError, NotFoundError, article
from backlot.refs import check_asset_name
from backlot.tracker.choices import parse_kind
from backlot.tracker.events import record_event
from backlot.tracker.projects import _actor, find_project, find_shot
from backlot.tracker.records import AssetRecord


def find_asset(session: Session, proj: Project, name: str) -> Asset:
    asset = session.scalar(select(Asset).where(Asset.project_id == proj.id, Asset.name == name))
    if asset is None:
        raise NotFoundError(f"no asset {name!r} in project {proj.code}: list them with `backlot assets {proj.code}`")
    return asset


def add_asset(session: Session, proj: Project, name: str, kind: AssetKind, shot: Shot | None,
              actor: str | None) -> Asset:
    asset = Asset(project_id=proj.id, name=name, kind=kind, shot_id=shot.id if shot else None)
    session.add(asset)
    session.flush()
    record_event(session, proj.id, EventKind.asset_created, _actor(actor), name=name, asset_kind=kind.value)
    return asset


def ensure_asset(session: Session, proj: Project, name: str, kind: str | AssetKind | None,
                 shot: str | None = None, actor: str | None = None) -> Asset:
    """The asset `name`, created with `kind` when missing; a different kind is a conflict."""
    check_asset_name(name)
    asset = session.scalar(select(Asset).where(Asset.project_id == proj.id, Asset.name == name).with_for_update())
    wanted = parse_kind(kind) if kind is not None else None
    if asset is not None:
        if wanted is not None and asset.kind != wanted:
            raise ConflictError(f"asset {proj.code}/{name} is {article(asset.kind.value)}, not {article(wanted.value)}")
        return asset
    if wanted is None:
        raise NotFoundError(f"no asset {name!r} in project {proj.code}: pass a kind to create it")
    shot_row = find_shot(session, proj, shot) if shot else None
    try:
        with session.begin_nested():
            return add_asset(session, proj, name, wanted, shot_row, actor)
    except IntegrityError:
        # Another transaction created it first: use theirs.
        return ensure_asset(session, proj, name, kind, shot, actor)


def create_asset(session: Session, project: str, name: str, kind: str, *, shot: str | None = None,
                 actor: str | None = None) -> AssetRecord:
    proj = find_project(session, project)
    check_asset_name(name)
    if session.scalar(select(Asset.id).where(Asset.project_id == proj.id, Asset.name == name)):
        raise ConflictError(f"asset {project}/{name} already exists")
    shot_row = find_shot(session, proj, shot) if shot else None
    asset = add_asset(session, proj, name, parse_kind(kind), shot_row, actor)
    session.flush()
    return _asset_record(asset, project, shot)


def get_asset(session: Session, project: str, name: str) -> AssetRecord:
    proj = find_project(session, project)
    asset = find_asset(session, proj, name)
    shot = session.get(Shot, asset.shot_id) if asset.shot_id else None
    return _asset_record(asset, project, shot.code if shot else None)


def list_assets(session: Session, project: str, kind: str | None = None) -> list[AssetRecord]:
    proj = find_project(session, project)
    stmt = (select(Asset, Shot.code).outerjoin(Shot, Shot.id == Asset.shot_id)
            .where(Asset.project_id == proj.id).order_by(Asset.name))
    if kind is not None:
        stmt = stmt.where(Asset.kind == parse_kind(kind))
    return [_asset_record(a, project, shot_code) for a, shot_code in session.execute(stmt)]


def _asset_record(asset: Asset, project: str, shot: str | None) -> AssetRecord:
    return AssetRecord(asset.id, project, asset.name, asset.kind.value, shot, asset.latest_number,
                       asset.approved_number)
