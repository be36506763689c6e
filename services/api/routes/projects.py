"""Projects, sequences, shots (editorial order), assets, the stale set, events, the contact sheet."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import func, select

import backlot
from backlot.access.webhooks import describe_events
from backlot.db.models import Asset, AssetKind, Event, EventKind, Sequence, Shot
from backlot.errors import InvalidInputError, NotFoundError
from backlot.refs import check_asset_name
from backlot.services.api import queries
from backlot.services.api.auth import Admin, AnyToken, DbSession, Viewer
from backlot.services.api.convert import stale_out
from backlot.services.api.errors import ERROR_RESPONSES
from backlot.services.api.paging import CodeFilter, CodePath, Limit, Offset, page_of
from backlot.services.api.schemas import (
    AssetOut,
    ContactSheetItem,
    EventOut,
    EventPage,
    Page,
    ProjectOut,
    ProjectPatch,
    SequenceOut,
    ShotDetail,
    ShotOut,
    StaleOut,
    TokenInfo,
)

router = APIRouter(responses=ERROR_RESPONSES)
P = "/api/projects/{project}"


@router.get("/api/token", response_model=TokenInfo, tags=["auth"])
def token_info(principal: AnyToken) -> TokenInfo:
    """The calling token: its project, role and holder."""
    return TokenInfo(project=principal.project, role=principal.role.value, name=principal.name)


@router.get("/api/projects", response_model=Page[ProjectOut], tags=["projects"])
def list_projects(principal: AnyToken, session: DbSession, limit: Limit = 100, offset: Offset = 0) -> Page[ProjectOut]:
    """The projects this token can see (its own)."""
    items = [ProjectOut(**backlot.get_project(session, principal.project).to_dict())]
    return page_of(items, limit, offset)


@router.get(P, response_model=ProjectOut, tags=["projects"])
def get_project(scope: Viewer) -> ProjectOut:
    return ProjectOut(**backlot.get_project(scope.session, scope.project).to_dict())


@router.patch(P, response_model=ProjectOut, tags=["projects"])
def patch_project(scope: Admin, body: ProjectPatch) -> ProjectOut:
    """Change the stale policy (what supersedes an input: a newer approved version, or any newer
    one) and how regeneration approves the adapters it retrains ('review' or 'auto')."""
    if body.stale_policy is None and body.adapter_approval is None:
        raise InvalidInputError("nothing to change: give stale_policy and/or adapter_approval")
    record = backlot.get_project(scope.session, scope.project)
    if body.stale_policy is not None:
        record = backlot.set_stale_policy(scope.session, scope.project, body.stale_policy, actor=scope.actor)
    if body.adapter_approval is not None:
        record = backlot.set_adapter_approval(scope.session, scope.project, body.adapter_approval, actor=scope.actor)
    return ProjectOut(**record.to_dict())


# -- sequences and shots ------------------------------------------------------------------


@router.get(P + "/sequences", response_model=Page[SequenceOut], tags=["shots"])
def list_sequences(scope: Viewer, code: CodeFilter = None, limit: Limit = 100, offset: Offset = 0) -> Page[SequenceOut]:
    """Sequences in editorial order (of their first shot), with their shot counts."""
    stmt = _sequences(scope.project_id)
    if code is not None:
        stmt = stmt.where(Sequence.code == code)
    total = scope.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = scope.session.execute(stmt.limit(limit).offset(offset))
    return Page[SequenceOut](items=[SequenceOut(id=i, code=c, shot_count=n) for i, c, n in rows], total=total,
                             limit=limit, offset=offset)


@router.get(P + "/sequences/{sequence}", response_model=SequenceOut, tags=["shots"])
def get_sequence(scope: Viewer, sequence: CodePath) -> SequenceOut:
    row = scope.session.execute(_sequences(scope.project_id).where(Sequence.code == sequence)).first()
    if row is None:
        raise NotFoundError(f"no sequence {sequence!r} in project {scope.project}")
    return SequenceOut(id=row[0], code=row[1], shot_count=row[2])


def _sequences(project_id: int):
    return (select(Sequence.id, Sequence.code, func.count(Shot.id))
            .outerjoin(Shot, Shot.sequence_id == Sequence.id).where(Sequence.project_id == project_id)
            .group_by(Sequence.id).order_by(func.min(Shot.editorial_order).nulls_last(), Sequence.code))


@router.get(P + "/shots", response_model=Page[ShotOut], tags=["shots"])
def list_shots(scope: Viewer, sequence: CodeFilter = None, limit: Limit = 100, offset: Offset = 0) -> Page[ShotOut]:
    """Shots in editorial order, optionally of one sequence."""
    stmt = (select(Shot, Sequence.code).outerjoin(Sequence, Sequence.id == Shot.sequence_id)
            .where(Shot.project_id == scope.project_id))
    if sequence is not None:
        stmt = stmt.where(Sequence.code == sequence)
    total = scope.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = scope.session.execute(stmt.order_by(Shot.editorial_order.nulls_last(), Shot.code).limit(limit).offset(offset))
    return Page[ShotOut](items=[shot_out(shot, seq) for shot, seq in rows], total=total, limit=limit, offset=offset)


@router.get(P + "/shots/{shot}", response_model=ShotDetail, tags=["shots"])
def get_shot(scope: Viewer, shot: CodePath) -> ShotDetail:
    """A shot and the assets made for it (its renders, storyboards)."""
    record = backlot.get_shot(scope.session, scope.project, shot)
    rows = scope.session.scalars(select(Asset).where(Asset.shot_id == record.id).order_by(Asset.name))
    return ShotDetail(**shot_out_record(record).model_dump(), assets=[asset_out(a, shot) for a in rows])


def shot_out(shot: Shot, sequence: str | None) -> ShotOut:
    return ShotOut(id=shot.id, code=shot.code, sequence=sequence, cut_in=shot.cut_in, cut_out=shot.cut_out,
                   handles=shot.handles, editorial_order=shot.editorial_order)


def shot_out_record(r) -> ShotOut:
    return ShotOut(id=r.id, code=r.code, sequence=r.sequence, cut_in=r.cut_in, cut_out=r.cut_out, handles=r.handles,
                   editorial_order=r.editorial_order)


# -- assets --------------------------------------------------------------------------------


@router.get(P + "/assets", response_model=Page[AssetOut], tags=["assets"])
def list_assets(scope: Viewer, kind: AssetKind | None = None, shot: CodeFilter = None,
                prefix: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_/-]+$", max_length=200,
                                                    description="Asset names starting with this")] = None,
                limit: Limit = 100, offset: Offset = 0) -> Page[AssetOut]:
    stmt = (select(Asset, Shot.code).outerjoin(Shot, Shot.id == Asset.shot_id)
            .where(Asset.project_id == scope.project_id))
    if kind is not None:
        stmt = stmt.where(Asset.kind == kind)
    if shot is not None:
        stmt = stmt.where(Shot.code == shot)
    if prefix is not None:
        stmt = stmt.where(Asset.name.startswith(prefix, autoescape=True))
    total = scope.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = scope.session.execute(stmt.order_by(Asset.name).limit(limit).offset(offset))
    return Page[AssetOut](items=[asset_out(a, code) for a, code in rows], total=total, limit=limit, offset=offset)


@router.get(P + "/assets/{asset:path}", response_model=AssetOut, tags=["assets"])
def get_asset(scope: Viewer, asset: str) -> AssetOut:
    check_asset_name(asset)
    return AssetOut(**backlot.get_asset(scope.session, scope.project, asset).to_dict())


def asset_out(a: Asset, shot: str | None) -> AssetOut:
    return AssetOut(id=a.id, name=a.name, kind=a.kind.value, shot=shot, latest_number=a.latest_number,
                    approved_number=a.approved_number)


# -- stale, events, contact sheet ------------------------------------------------------------


@router.get(P + "/stale", response_model=Page[StaleOut], tags=["lineage"])
def list_stale(scope: Viewer, kind: AssetKind | None = None,
               prefix: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_/-]+$", max_length=200)] = None,
               limit: Limit = 100, offset: Offset = 0) -> Page[StaleOut]:
    """Current versions that are stale, each with its nearest reason (superseded input, by what, path)."""
    stale = backlot.find_stale_versions(scope.session, scope.project)
    items = [stale_out(v, scope.project) for v in stale
             if (kind is None or v.kind == kind.value) and (prefix is None or v.asset.startswith(prefix))]
    return page_of(items, limit, offset)


@router.get(P + "/events", response_model=EventPage, tags=["events"])
def list_events(scope: Viewer, after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0, kind: EventKind | None = None,
                version_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None, limit: Limit = 100) -> EventPage:
    """The project's event log, oldest first from `after` (pass `next_after` back for the next page)."""
    stmt = select(Event.id).where(Event.project_id == scope.project_id, Event.id > after)
    if kind is not None:
        stmt = stmt.where(Event.kind == kind)
    if version_id is not None:
        stmt = stmt.where(Event.version_id == version_id)
    ids = list(scope.session.scalars(stmt.order_by(Event.id).limit(limit)))
    items = [EventOut(**e) for e in describe_events(scope.session, ids)]
    return EventPage(items=items, next_after=ids[-1] if ids else after)


@router.get(P + "/contact-sheet", response_model=Page[ContactSheetItem], tags=["review"])
def contact_sheet(scope: Viewer, sequence: CodeFilter = None, limit: Limit = 100,
                  offset: Offset = 0) -> Page[ContactSheetItem]:
    """Shots in editorial order with their current render: status, stale flag, thumbnail (the review page's data)."""
    return queries.contact_sheet(scope.session, scope.project, scope.project_id, sequence, limit, offset)
