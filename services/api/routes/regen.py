"""Regeneration: the plan (what is stale and will be remade, in order, from what) and a request
to run it. The same functions as `backlot regen plan|run`, so a request made twice (from here
or the CLI) queues its work once."""

from __future__ import annotations

import logging

from fastapi import APIRouter, BackgroundTasks, Request

import backlot
from backlot.lineage import PlanItem
from backlot.services.api.auth import Supervisor, Viewer
from backlot.services.api.errors import ERROR_RESPONSES
from backlot.services.api.paging import CodeFilter
from backlot.services.api.schemas import PlanItemOut, RegenerationOut, SwapOut

router = APIRouter(responses=ERROR_RESPONSES)
P = "/api/projects/{project}"
log = logging.getLogger("backlot.api")


def plan_item_out(item: PlanItem) -> PlanItemOut:
    return PlanItemOut(key=item.key, action=item.action, asset=item.asset, kind=item.kind, version=item.version,
                       reason=item.reason, path=item.path, waits_for=item.waits_for, blocked=item.blocked,
                       swaps=[SwapOut(role=s.role, old=s.old, new=s.new, from_item=s.from_item) for s in item.swaps],
                       shot=item.shot, sequence=item.sequence, editorial_order=item.editorial_order,
                       continuity=item.continuity, frames=list(item.frames) if item.frames else None)


@router.get(P + "/regeneration", response_model=list[PlanItemOut], tags=["lineage"])
def get_regeneration_plan(scope: Viewer, sequence: CodeFilter = None) -> list[PlanItemOut]:
    """The regeneration plan: stale adapters to retrain and shots to re-render, in the order they
    can run, each with why it is stale, what it swaps and what it waits for."""
    return [plan_item_out(i) for i in backlot.plan_regeneration(scope.session, scope.project, sequence)]


@router.post(P + "/regeneration", response_model=RegenerationOut, status_code=202, tags=["lineage"])
def request_regeneration(scope: Supervisor, background: BackgroundTasks, request: Request,
                         sequence: CodeFilter = None) -> RegenerationOut:
    """Write the plan's jobs (what is already in flight is not queued again); workers run them.
    The jobs are handed to the broker once this request has committed."""
    import uuid

    from backlot.services.worker.submit import submit_regeneration

    items = backlot.plan_regeneration(scope.session, scope.project, sequence)
    result = submit_regeneration(scope.session, scope.project, items, uuid.uuid4().hex[:12])
    if result.jobs:
        background.add_task(_dispatch, request.app.state.engine, request.app.state.settings.backlot)
    return RegenerationOut(batch=result.batch, plan=[plan_item_out(i) for i in result.plan],
                           jobs=[j.id for j in result.jobs], in_flight=result.in_flight,
                           skipped=[i.key for i in result.skipped])


def _dispatch(engine, settings) -> None:
    """After the commit: send what can run now (workers' dispatchers would, within seconds),
    from this server's database, through the broker on it unless BROKER_URL names another."""
    from backlot.services.worker.app import create_app
    from backlot.services.worker.dispatch import dispatch

    try:
        dispatch(create_app(settings), engine)
    except Exception as exc:  # noqa: BLE001 - the jobs are queued; a worker's dispatcher sends them
        log.warning("regeneration queued, not yet sent: %s", exc)
