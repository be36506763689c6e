"""Requesting work: jobs written in the caller's transaction, handed to Celery after commit."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Sequence

from sqlalchemy import text

import backlot
from backlot import jobs
from backlot.config import load_settings
from backlot.db.jobs import JobKind
from backlot.errors import InvalidInputError
from backlot.lineage import PlanItem, plan_regeneration
from backlot.services.worker.dispatch import dispatch
from backlot.tracker.projects import find_project


def submit_render(session, project: str, shot: str, settings: dict, *, base_model: str, adapters: Sequence[dict] = (),
                  frames: int | None = None, continuity: bool = True, key: str | None = None,
                  depends_on: int | None = None, batch: str | None = None) -> jobs.JobRecord:
    params = {"shot": shot, "settings": settings, "base_model": base_model, "adapters": list(adapters),
              "frames": frames, "continuity": continuity}
    return jobs.request_job(session, project, JobKind.render_shot, params, idempotency_key=key or _key("render"),
                            depends_on=depends_on, batch=batch)


def submit_training(session, project: str, name: str, concept_art: Sequence[str], *, base_model: str,
                    captions: Sequence[str] = (), settings: dict | None = None,
                    key: str | None = None, clearance_override: str | None = None,
                    actor: str | None = None) -> jobs.JobRecord:
    """A training job; `clearance_override` (a reason) trains on art not cleared to train, recorded
    on the adapter as decided by the requester (`actor`), not by the worker that runs it."""
    params = {"name": name, "concept_art": list(concept_art), "base_model": base_model, "captions": list(captions),
              "settings": settings or {}}
    if clearance_override is not None:
        if not clearance_override.strip():
            raise InvalidInputError("--override-clearance needs a reason (it is recorded on the adapter)")
        params["clearance_override"] = {"reason": clearance_override.strip(), "by": actor or load_settings().user}
    return jobs.request_job(session, project, JobKind.train_adapter, params, idempotency_key=key or _key("train"),
                            actor=actor)


@dataclass(frozen=True)
class Regeneration:
    """What a `regen run` did: the plan, the jobs it wrote, and the plan items already in
    flight from an earlier request (their job ids), which it left alone."""

    batch: str
    plan: list[PlanItem]
    jobs: list[jobs.JobRecord]
    in_flight: dict[str, int] = field(default_factory=dict)  # plan item key -> job id
    skipped: list[PlanItem] = field(default_factory=list)  # manual or blocked items


_ACTIVE_REGEN_SQL = text("""
SELECT id, (params->>'source')::bigint AS source FROM jobs
WHERE project_id = :project_id AND kind IN ('rerender', 'retrain_adapter')
  AND state IN ('queued', 'dispatched', 'running') AND params ? 'source'
""")


def submit_regeneration(session, project: str, items: Sequence[PlanItem], batch: str) -> Regeneration:
    """A job per runnable plan item, waiting for the jobs of the items it needs (and, for a
    retrained adapter under review, for its approval). An item whose stale version already has
    a regeneration job in flight reuses that job: a request made twice queues its work once."""
    proj = find_project(session, project)
    # One request per project at a time decides what is in flight (held to the end of the transaction).
    session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": (0xB10 << 32) + proj.id})
    active = {r.source: r.id for r in session.execute(_ACTIVE_REGEN_SQL, {"project_id": proj.id})}
    result = Regeneration(batch, list(items), [])
    runnable = []
    for item in items:
        if item.version_id in active:
            result.in_flight[item.key] = active[item.version_id]
        elif item.action not in ("retrain", "render") or item.blocked:
            result.skipped.append(item)
        else:
            runnable.append(item)
    job_of = dict(result.in_flight) | dict(zip((i.key for i in runnable), jobs.reserve_job_ids(session, len(runnable))))
    gated = {i.key for i in items if i.action == "retrain" and proj.adapter_approval == "review"}
    new = []
    for item in runnable:
        params = _job_params(item, job_of, proj.adapter_approval)
        continuity = (params.get("continuity") or {}).get("job")
        new.append(jobs.NewJob(job_of[item.key], _KINDS[item.action], params, f"regen:{batch}:{item.key}",
                               depends_on=continuity, waits_for=[(job_of[k], k in gated) for k in item.waits_for]))
    result.jobs.extend(jobs.request_jobs(session, project, new, batch=batch))
    return result


_KINDS = {"retrain": JobKind.retrain_adapter, "render": JobKind.rerender}


def _job_params(item: PlanItem, job_of: dict[str, int], approval: str) -> dict:
    swaps = [{"role": s.role, "old": s.old_version_id, "new": s.new_version_id}
             if s.from_item is None else {"role": s.role, "old": s.old_version_id, "job": job_of[s.from_item]}
             for s in item.swaps]
    params = {"source": item.version_id, "plan_key": item.key, "inputs": swaps}
    if item.action == "retrain":
        params["approval"] = approval
    elif item.continuity_from_item:
        params["continuity"] = {"job": job_of[item.continuity_from_item]}
    elif item.continuity_version_id:
        params["continuity"] = {"version": item.continuity_version_id}
    return params


def regenerate(app, project: str, sequence: str | None = None) -> Regeneration:
    """Plan a regeneration and write its jobs in one transaction, then send what can run now;
    the rest is sent by the worker that finishes what it waits for (or, for a review gate, by
    the dispatcher that the approval wakes)."""
    batch = uuid.uuid4().hex[:12]
    with backlot.session() as s:
        result = submit_regeneration(s, project, plan_regeneration(s, project, sequence), batch)
    if result.jobs:
        dispatch(app)
    return result


def _key(prefix: str) -> str:
    return f"{prefix}:{uuid.uuid4().hex}"


__all__ = ["Regeneration", "regenerate", "submit_regeneration", "submit_render", "submit_training"]
