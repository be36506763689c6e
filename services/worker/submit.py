"""Requesting work: jobs written in the caller's transaction, handed to Celery after commit."""

from __future__ import annotations

import uuid
from typing import Sequence

from celery import chain, group

import backlot
from backlot import jobs
from backlot.db.jobs import JobKind
from backlot.lineage import PlanItem, plan_regeneration


def submit_render(session, project: str, shot: str, settings: dict, *, base_model: str, adapters: Sequence[dict] = (),
                  frames: int | None = None, continuity: bool = True, key: str | None = None,
                  depends_on: int | None = None, batch: str | None = None) -> jobs.JobRecord:
    params = {"shot": shot, "settings": settings, "base_model": base_model, "adapters": list(adapters),
              "frames": frames, "continuity": continuity}
    return jobs.request_job(session, project, JobKind.render_shot, params, idempotency_key=key or _key("render"),
                            depends_on=depends_on, batch=batch)


def submit_training(session, project: str, name: str, concept_art: Sequence[str], *, base_model: str,
                    captions: Sequence[str] = (), settings: dict | None = None,
                    key: str | None = None) -> jobs.JobRecord:
    params = {"name": name, "concept_art": list(concept_art), "base_model": base_model, "captions": list(captions),
              "settings": settings or {}}
    return jobs.request_job(session, project, JobKind.train_adapter, params, idempotency_key=key or _key("train"))


def submit_regeneration(session, project: str, items: Sequence[PlanItem], batch: str) -> list[list[jobs.JobRecord]]:
    """One rerender job per plan item; within a sequence each depends on the one before (a chain)."""
    chains: dict[str | None, list[jobs.JobRecord]] = {}
    for item in items:
        previous = chains.setdefault(item.sequence, [])
        params = {"source": item.version_id, "continuity_from_dependency": item.continuity_from_previous_item}
        record = jobs.request_job(session, project, JobKind.rerender, params,
                                  idempotency_key=f"regen:{batch}:{item.version}",
                                  depends_on=previous[-1].id if previous else None, batch=batch)
        previous.append(record)
    return list(chains.values())


def send_chains(app, chains: Sequence[Sequence[jobs.JobRecord]]) -> None:
    """A Celery chain per sequence (order matters for continuity), a group across sequences.

    Marked dispatched and committed first, then sent (the outbox order); if sending fails they
    go back to queued and the dispatcher sends them one by one as their dependencies finish.
    """
    ids = [j.id for c in chains for j in c]
    with backlot.session() as s:
        jobs.mark_dispatched(s, ids)
    canvas = group(chain(app.signature("backlot.run_job", args=[j.id], queue=j.queue, immutable=True) for j in c)
                   for c in chains)
    try:
        canvas.apply_async()
    except Exception:
        with backlot.session() as s:
            jobs.requeue(s, ids)
        raise


def regenerate(app, project: str, sequence: str | None = None) -> tuple[str, list[PlanItem], list[list[jobs.JobRecord]]]:
    """Plan and dispatch a regeneration; returns (batch id, plan, job chains)."""
    batch = uuid.uuid4().hex[:12]
    with backlot.session() as s:
        items = plan_regeneration(s, project, sequence)
        chains = submit_regeneration(s, project, items, batch)
    if chains:
        send_chains(app, chains)
    return batch, items, chains


def _key(prefix: str) -> str:
    return f"{prefix}:{uuid.uuid4().hex}"


__all__ = ["regenerate", "send_chains", "submit_regeneration", "submit_render", "submit_training"]
