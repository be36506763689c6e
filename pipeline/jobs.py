"""Jobs in PostgreSQL: the outbox between requests and workers.

`request_job` writes a row in the caller's transaction (so a job exists exactly when the
change that asked for it commits). Workers claim, report progress and finish jobs through
the other functions here; the dispatcher (backlot.services.worker) asks `jobs_to_send` what to hand
to the broker. Nothing here knows about Celery.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Sequence

from sqlalchemy import exists, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from backlot.db.jobs import ACTIVE_STATES, Job, JobDependency, JobKind, JobState
from backlot.db.models import EventKind, Version, VersionStatus
from backlot.errors import ConflictError, InvalidInputError, NotFoundError
from backlot.tracker.choices import parse_choice
from backlot.tracker.events import record_event
from backlot.tracker.projects import _actor, find_project
from backlot.tracker.records import _Record

QUEUES = {JobKind.train_adapter: "gpu", JobKind.render_shot: "gpu", JobKind.rerender: "gpu",
          JobKind.retrain_adapter: "gpu"}


@dataclass(frozen=True)
class JobRecord(_Record):
    id: int
    project: str
    kind: str
    state: str
    queue: str
    params: dict[str, Any]
    idempotency_key: str
    attempts: int
    max_attempts: int
    progress: float
    progress_note: str | None
    depends_on: int | None
    batch: str | None
    result_version_id: int | None
    error: str | None
    traceback: str | None
    worker: str | None
    created_at: datetime
    updated_at: datetime
    waiting_for: str | None = None  # for a queued job that cannot run yet: what it waits for, in words
    started_at: datetime | None = None  # the last attempt's claim
    finished_at: datetime | None = None


def _record(job: Job, project: str, waiting_for: str | None = None) -> JobRecord:
    state = job.state.value
    if waiting_for and waiting_for.startswith("approval"):
        state = "waiting_approval"  # queued, held by a review gate
    return JobRecord(job.id, project, job.kind.value, state, job.queue, job.params, job.idempotency_key,
                     job.attempts, job.max_attempts, job.progress, job.progress_note, job.depends_on_id, job.batch,
                     job.result_version_id, job.error, job.traceback, job.worker, job.created_at, job.updated_at,
                     waiting_for, job.started_at, job.finished_at)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def request_job(session: Session, project: str, kind: str | JobKind, params: dict[str, Any], *,
                idempotency_key: str, depends_on: int | None = None, batch: str | None = None,
                max_attempts: int = 3, actor: str | None = None) -> JobRecord:
    """A new queued job, or the existing one with the same idempotency key (same kind and params).
    It runs once `depends_on` (the job before it in a chain) is done; jobs that wait for several
    others, or for an approval, are written by `request_jobs`."""
    job_kind = parse_choice(JobKind, kind, "job kind")
    if not idempotency_key:
        raise InvalidInputError("a job needs an idempotency key")
    proj = find_project(session, project)
    session.execute(pg_insert(Job).values(
        project_id=proj.id, kind=job_kind, queue=QUEUES[job_kind], params=params, idempotency_key=idempotency_key,
        depends_on_id=depends_on, batch=batch, max_attempts=max_attempts, created_by=_actor(actor),
    ).on_conflict_do_nothing(index_elements=["idempotency_key"]))
    job = session.scalar(select(Job).where(Job.idempotency_key == idempotency_key))
    if job.kind != job_kind or job.params != params:
        raise ConflictError(f"idempotency key {idempotency_key!r} is already used by job {job.id} "
                            "with other parameters")
    return _record(job, project)


@dataclass(frozen=True)
class NewJob:
    """One job of a batch written at once (`request_jobs`); `id` from `reserve_job_ids`, so that
    jobs of the batch can wait for each other. A `(job_id, True)` entry of `waits_for` also
    waits for that job's result to be approved."""

    id: int
    kind: JobKind
    params: dict[str, Any]
    idempotency_key: str
    depends_on: int | None = None
    waits_for: Sequence[tuple[int, bool]] = ()


def reserve_job_ids(session: Session, count: int) -> list[int]:
    return list(session.scalars(text("SELECT nextval('jobs_id_seq') FROM generate_series(1, :n)"), {"n": count}))


def request_jobs(session: Session, project: str, new: Sequence[NewJob], *, batch: str | None = None,
                 max_attempts: int = 3, actor: str | None = None) -> list[JobRecord]:
    """Many new queued jobs in two multi-row statements (a regeneration writes thousands);
    their idempotency keys must be new. Otherwise as `request_job`."""
    if not new:
        return []
    proj, who = find_project(session, project), _actor(actor)
    rows = [{"id": j.id, "project_id": proj.id, "kind": j.kind, "queue": QUEUES[j.kind], "params": j.params,
             "idempotency_key": j.idempotency_key, "depends_on_id": j.depends_on, "batch": batch,
             "max_attempts": max_attempts, "created_by": who} for j in new]
    created = {job.id: job for job in session.scalars(pg_insert(Job).returning(Job), rows)}
    waits = [{"job_id": j.id, "depends_on_id": other, "approval": approval} for j in new for other, approval in j.waits_for]
    if waits:
        session.execute(pg_insert(JobDependency), waits)
    return [_record(created[j.id], project) for j in new]


def get_job(session: Session, job_id: int) -> JobRecord:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFoundError(f"no job {job_id}")
    return _record(job, find_project_code(session, job.project_id))


def find_project_code(session: Session, project_id: int) -> str:
    from backlot.db.models import Project

    return session.get(Project, project_id).code


def list_jobs(session: Session, project: str | None = None, *, active_only: bool = False,
              batch: str | None = None, limit: int = 200) -> list[JobRecord]:
    from backlot.db.models import Project

    stmt = select(Job, Project.code).join(Project, Project.id == Job.project_id).order_by(Job.id.desc()).limit(limit)
    if project:
        stmt = stmt.where(Job.project_id == find_project(session, project).id)
    if active_only:
        stmt = stmt.where(Job.state.in_(ACTIVE_STATES))
    if batch:
        stmt = stmt.where(Job.batch == batch)
    rows = session.execute(stmt).all()
    waits = describe_waits(session, [job.id for job, _ in rows if job.state == JobState.queued])
    return [_record(job, code, waits.get(job.id)) for job, code in rows]


# What holds each queued job: the first unmet dependency (the chain's predecessor or a listed one).
_WAITS_SQL = text("""
SELECT DISTINCT ON (d.job_id) d.job_id, d.depends_on_id, p.state::text AS state, d.approval,
       pr.code || '/' || a.name || '@' || v.number AS result_ref
FROM (SELECT job_id, depends_on_id, approval FROM job_dependencies WHERE job_id = ANY(:ids)
      UNION ALL SELECT id, depends_on_id, false FROM jobs WHERE id = ANY(:ids) AND depends_on_id IS NOT NULL) d
JOIN jobs p ON p.id = d.depends_on_id
LEFT JOIN versions v ON v.id = p.result_version_id LEFT JOIN assets a ON a.id = v.asset_id
LEFT JOIN projects pr ON pr.id = v.project_id
WHERE p.state <> 'done' OR (d.approval AND v.status IS DISTINCT FROM 'approved')
ORDER BY d.job_id, p.state = 'done', d.depends_on_id
""")


def describe_waits(session: Session, job_ids: Sequence[int]) -> dict[int, str]:
    """For queued jobs: what each still waits for, in words ("job 41", "approval of REF (job 41)")."""
    if not job_ids:
        return {}
    waits = {}
    for r in session.execute(_WAITS_SQL, {"ids": list(job_ids)}):
        if r.state == "done":
            waits[r.job_id] = f"approval of {r.result_ref} (job {r.depends_on_id})"
        else:
            waits[r.job_id] = f"job {r.depends_on_id} ({r.state})"
    return waits


def cancel_job(session: Session, job_id: int) -> JobRecord:
    job = session.get(Job, job_id, with_for_update=True)
    if job is None:
        raise NotFoundError(f"no job {job_id}")
    if job.state in (JobState.done, JobState.failed, JobState.cancelled):
        raise ConflictError(f"job {job_id} is already {job.state.value}")
    job.state, job.updated_at, job.finished_at = JobState.cancelled, _now(), _now()
    session.flush()
    return get_job(session, job_id)


# -- the worker's side ------------------------------------------------------------------------


def claim_job(session: Session, job_id: int, worker: str, *, stale_after: float) -> Job | None:
    """Mark a job running for this worker; None when there is nothing to do: done, cancelled,
    failed, running elsewhere with a live heartbeat, or waiting for the job it depends on
    (a failed dependency fails it)."""
    job = session.get(Job, job_id, with_for_update=True)
    if job is None or job.state in (JobState.done, JobState.cancelled, JobState.failed):
        return None
    if (job.state == JobState.running and job.heartbeat_at
            and job.heartbeat_at > _now() - timedelta(seconds=stale_after) and not worker_is_gone(job.worker)):
        return None
    if job.depends_on_id is not None:
        parent = session.get(Job, job.depends_on_id)
        if parent.state in (JobState.failed, JobState.cancelled):
            job.state, job.finished_at, job.updated_at = JobState.failed, _now(), _now()
            job.error = f"job {parent.id} it depends on is {parent.state.value}"
            return None
        if parent.state != JobState.done:
            return None
    if session.scalar(select(_unmet_dependency(job.id))):
        job.state, job.updated_at = JobState.queued, _now()  # sent too early: the dispatcher sends it again
        return None
    if job.attempts >= job.max_attempts:
        job.state, job.error, job.updated_at = JobState.failed, job.error or "out of attempts", _now()
        return None
    job.state, job.worker, job.attempts = JobState.running, worker, job.attempts + 1
    job.heartbeat_at = job.updated_at = job.started_at = _now()
    return job


def worker_name(pid: int | None = None) -> str:
    """HOST:PID:PIDNS, how a worker process signs the jobs it claims: enough for another process
    on the same host, in the same PID namespace (not another container), to tell it is gone."""
    return f"{socket.gethostname()}:{pid or os.getpid()}:{_pid_namespace()}"


def _pid_namespace() -> str:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return "?"


def worker_is_gone(worker: str | None) -> bool:
    """True when `worker` (see `worker_name`) ran on this host, in this PID namespace, and that
    process no longer exists: its jobs need not wait for their heartbeat to go stale."""
    host, pid, namespace = ((worker or "").rsplit(":", 2) + ["", "", ""])[:3]
    if host != socket.gethostname() or not pid.isdigit() or namespace != _pid_namespace() or namespace == "?":
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def report_progress(session: Session, job_id: int, progress: float, note: str | None = None) -> bool:
    """Record progress and a heartbeat; False when the job was cancelled meanwhile."""
    state = session.execute(
        update(Job).where(Job.id == job_id).values(progress=min(max(progress, 0.0), 1.0), progress_note=note,
                                                     heartbeat_at=_now(), updated_at=_now())
        .returning(Job.state)).scalar()
    return state is not None and state != JobState.cancelled


def touch_heartbeat(session: Session, job_id: int) -> None:
    """A heartbeat alone, for a running job between progress reports (a model being fetched
    and loaded reports no progress, and must not look lost meanwhile)."""
    session.execute(update(Job).where(Job.id == job_id, Job.state == JobState.running).values(heartbeat_at=_now()))


def finish_job(session: Session, job_id: int, version_id: int) -> None:
    """Mark a job done with its result, in the transaction that publishes the result. A job
    cancelled meanwhile raises (a BacklotError), so that transaction publishes nothing."""
    job = session.get(Job, job_id, with_for_update=True)
    if job.state == JobState.cancelled:
        raise ConflictError(f"job {job_id} was cancelled")
    job.state, job.result_version_id, job.progress = JobState.done, version_id, 1.0
    job.error = job.traceback = None
    job.finished_at = job.updated_at = _now()
    # Dependents become runnable now. One already marked dispatched (a message sent before this
    # job was done, or a chain from an older Backlot) may have no message left: queued again, so
    # that the caller's `take_due` sends it at once; a second message for it is harmless (claim).
    session.execute(update(Job).where(Job.depends_on_id == job_id, Job.state == JobState.dispatched)
                    .values(state=JobState.queued, updated_at=_now()))
    record_event(session, job.project_id, EventKind.job_finished, job.created_by, version_id,
                 job_id=job.id, job_kind=job.kind.value, state="done")


def fail_attempt(session: Session, job_id: int, error: str, traceback: str, *, final: bool,
                 outage: bool = False) -> None:
    """Record an attempt's error; the job is failed when it is the last attempt, else queued again.
    An `outage` (the store or the database unreachable: nothing wrong with the job) does not
    count as an attempt: the job is queued again and waits out the outage at the dispatcher's pace."""
    job = session.get(Job, job_id, with_for_update=True)
    job.error, job.traceback, job.updated_at = error, traceback, _now()
    if job.state == JobState.cancelled:
        return  # cancelled while it ran: it stays cancelled
    if outage and not final:
        job.attempts, job.state = max(job.attempts - 1, 0), JobState.queued
        return
    if final or job.attempts >= job.max_attempts:
        job.state, job.finished_at = JobState.failed, _now()
        record_event(session, job.project_id, EventKind.job_finished, job.created_by, None,
                     job_id=job.id, job_kind=job.kind.value, state="failed", error=error)
    else:
        job.state = JobState.queued


def requeue(session: Session, job_ids: list[int]) -> None:
    """Jobs whose message could not be sent: queued again, for the next dispatch."""
    session.execute(update(Job).where(Job.id.in_(job_ids), Job.state == JobState.dispatched)
                    .values(state=JobState.queued, updated_at=_now()))


def _unmet_dependency(job_id):
    """EXISTS: a job this one waits for (job_dependencies) is not done, or its result is not
    approved where the dependency is a review gate."""
    dep = JobDependency.__table__.alias("dep")
    other = Job.__table__.alias("other")
    status = select(Version.status).where(Version.id == other.c.result_version_id).scalar_subquery()
    approved = func.coalesce(status == VersionStatus.approved, False)
    return exists().where(dep.c.job_id == job_id, other.c.id == dep.c.depends_on_id,
                          or_(other.c.state != JobState.done, dep.c.approval & ~approved))


_CANCEL_BLOCKED_SQL = text("""
WITH RECURSIVE doomed(id, why) AS (
    SELECT d.job_id, CASE WHEN p.state IN ('failed', 'cancelled') THEN 'job ' || p.id || ' it waits for is ' || p.state
                          ELSE 'the result of job ' || p.id || ' it waits for was rejected' END
    FROM job_dependencies d JOIN jobs p ON p.id = d.depends_on_id JOIN jobs j ON j.id = d.job_id
    LEFT JOIN versions v ON v.id = p.result_version_id
    WHERE j.state = 'queued' AND j.project_id = ANY(:projects)
      AND (p.state IN ('failed', 'cancelled') OR (d.approval AND p.state = 'done' AND v.status = 'rejected'))
  UNION
    SELECT j.id, 'job ' || x.id || ' it waits for was cancelled' FROM doomed x
    JOIN (SELECT job_id AS id, depends_on_id FROM job_dependencies
          UNION ALL SELECT id, depends_on_id FROM jobs WHERE depends_on_id IS NOT NULL) e ON e.depends_on_id = x.id
    JOIN jobs j ON j.id = e.id WHERE j.state = 'queued'
)
UPDATE jobs SET state = 'cancelled', error = w.why, finished_at = now(), updated_at = now()
FROM (SELECT DISTINCT ON (id) id, why FROM doomed ORDER BY id) w
WHERE jobs.id = w.id AND jobs.state = 'queued'
RETURNING jobs.id
""")


def cancel_blocked(session: Session) -> list[int]:
    """Cancel queued jobs that can never run: what they wait for failed or was cancelled, or the
    result they wait to see approved was rejected (and so on, down their dependents)."""
    projects = list(session.scalars(select(Job.project_id).where(Job.state == JobState.queued).distinct()))
    if not projects:
        return []
    return list(session.scalars(_CANCEL_BLOCKED_SQL, {"projects": projects}))


def jobs_to_send(session: Session, *, stale_after: float, redispatch_after: float, limit: int = 100) -> list[Job]:
    """Jobs the broker should be given now, marked dispatched: queued ones whose dependencies are
    done (and approved where a review gate says so); dispatched ones no worker started in time
    (a lost message); running ones whose worker stopped beating (a killed worker). Queued jobs
    that can never run are cancelled first, with the reason."""
    now = _now()
    cancel_blocked(session)
    parent = Job.__table__.alias("parent")
    dependency_done = or_(Job.depends_on_id.is_(None),
                          select(parent.c.state).where(parent.c.id == Job.depends_on_id).scalar_subquery()
                          == JobState.done.value) & ~_unmet_dependency(Job.id)
    stmt = (select(Job).where(or_(
        (Job.state == JobState.queued) & dependency_done,
        (Job.state == JobState.dispatched) & dependency_done
        & (Job.updated_at < now - timedelta(seconds=redispatch_after)),
        (Job.state == JobState.running) & (Job.heartbeat_at < now - timedelta(seconds=stale_after)),
    )).order_by(Job.id).limit(limit).with_for_update(skip_locked=True))
    jobs = list(session.scalars(stmt))
    jobs += _orphans(session, {job.id for job in jobs})
    for job in jobs:
        job.state, job.updated_at = JobState.dispatched, now
    return jobs


def _orphans(session: Session, taken: set[int]) -> list[Job]:
    """Running jobs whose worker process on this host is gone (killed): due now, not after
    their heartbeat goes stale."""
    here = select(Job).where(Job.state == JobState.running, Job.worker.like(f"{socket.gethostname()}:%"))
    return [job for job in session.scalars(here.with_for_update(skip_locked=True))
            if job.id not in taken and worker_is_gone(job.worker)]
