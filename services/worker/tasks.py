"""The task: run one job from the jobs table, whatever its kind, exactly once in effect.

A message only carries a job id. The task claims the row, runs the work with progress and
heartbeats written back, and publishes with the job's idempotency key on the version, so a
message delivered twice (or a job re-sent after a worker died) still yields one version.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback as tb
from contextlib import contextmanager

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import select
from celery.signals import worker_process_init, worker_ready

import backlot
from backlot import jobs
from backlot.db.jobs import JobKind, JobState
from backlot.db.models import Version
from backlot.errors import BacklotError, DatabaseError, StoreUnavailableError
from backlot.services.worker.app import app
from backlot.services.worker.dispatch import STALE_AFTER, send, take_due

log = logging.getLogger("backlot.worker")
HEARTBEAT_EVERY = 1.0


@app.task(name="backlot.run_job", bind=True)
def run_job(self, job_id: int) -> int | None:
    """Two transactions on the way: the claim, and one that publishes the version, marks the
    job done and marks what is due next dispatched (sent once it has committed). A render
    shorter than HEARTBEAT_EVERY writes nothing in between."""
    with backlot.session() as s:
        # Signed by this (pool) process, after the fork: its death is seen as the job's worker gone.
        job = jobs.claim_job(s, job_id, jobs.worker_name(), stale_after=STALE_AFTER)
        if job is None:
            return None
        # Only an earlier attempt can have published (and died before committing `done`).
        key = version_key(job_id)
        existing = job.attempts > 1 and s.scalar(select(Version.id).where(Version.idempotency_key == key))
        if existing:
            jobs.finish_job(s, job_id, existing)
            due = take_due(s)
        else:
            kind, params, project = job.kind, dict(job.params), jobs.find_project_code(s, job.project_id)
            continuity = _dependency_result(s, job)
    if existing:
        send_due(due)
        return existing
    try:
        with _heartbeat(job_id):
            version_id, due = execute(kind, project, params, job_id, continuity)
    except (Exception, SoftTimeLimitExceeded) as exc:  # noqa: BLE001 - every failure is recorded on the job
        outage = is_outage(exc)
        final = isinstance(exc, BacklotError) and not outage  # bad input will not get better by retrying
        with backlot.session() as s:
            jobs.fail_attempt(s, job_id, f"{type(exc).__name__}: {exc}", tb.format_exc(), final=final, outage=outage)
        log.warning("job %s failed: %s", job_id, exc)
        return None
    send_due(due)
    return version_id


def version_key(job_id: int) -> str:
    return f"job:{job_id}"


def _dependency_result(session, job) -> int | None:
    if job.depends_on_id is None:
        return None
    parent = session.get(type(job), job.depends_on_id)
    return parent.result_version_id if parent and parent.state == JobState.done else None


def is_outage(exc: BaseException) -> bool:
    """An error of the infrastructure, not of the job: the store or the database unreachable
    (Backlot's own errors for them, or the S3 client's connection errors)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (StoreUnavailableError, DatabaseError, ConnectionError, TimeoutError)):
            return True
        name, module = type(exc).__name__, type(exc).__module__
        if module.startswith(("botocore", "aiobotocore", "aiohttp")) and ("Connect" in name or "Timeout" in name):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


@contextmanager
def _heartbeat(job_id: int):
    """Beat in the background while the job runs, whatever it is doing: between progress
    reports (fetching a many-GB model from the store, loading it) a job must not look lost to
    the dispatcher, or another host would run it too. A database outage only skips beats."""
    stop = threading.Event()
    every = max(HEARTBEAT_EVERY, STALE_AFTER / 4)

    def beat() -> None:
        while not stop.wait(every):
            try:
                with backlot.session() as s:
                    jobs.touch_heartbeat(s, job_id)
            except Exception as exc:  # noqa: BLE001 - the next beat tries again; progress reports still beat
                log.debug("heartbeat of job %s skipped: %s", job_id, exc)

    thread = threading.Thread(target=beat, name=f"backlot-heartbeat-{job_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def execute(kind: JobKind, project: str, params: dict, job_id: int,
            continuity: int | None) -> tuple[int, list[tuple[int, str]]]:
    """Run the work and publish, with the job marked done in the same transaction as the
    version; returns the version and the jobs that transaction marked dispatched (to send)."""
    from backlot import generation as gen

    last = [time.monotonic()]  # the claim has just beaten

    def beat(fraction: float, note: str) -> None:
        # The last beat is left to finish_job, which also refuses a job cancelled meanwhile.
        if time.monotonic() - last[0] < HEARTBEAT_EVERY or fraction >= 1:
            return
        last[0] = time.monotonic()
        with backlot.session() as s:
            if not jobs.report_progress(s, job_id, fraction, note):
                raise BacklotError(f"job {job_id} was cancelled")

    key = version_key(job_id)
    with backlot.session() as s:
        if kind == JobKind.train_adapter:
            settings = gen.TrainSettings(**params.get("settings", {}))
            version = gen.train_adapter(s, project, params["name"], params["concept_art"],
                                        base_model=params["base_model"], captions=params.get("captions", []),
                                        settings=settings, idempotency_key=key,
                                        clearance_override=_override(params),
                                        progress=lambda step, loss: beat(step / settings.steps, f"loss {loss:.4f}"))
        elif kind == JobKind.render_shot:
            settings = gen.RenderSettings(**params["settings"])
            plan = gen.plan_render(s, project, params["shot"], settings, base_model=params["base_model"],
                                   adapters=[gen.AdapterUse(a["ref"], a["weight"]) for a in params.get("adapters", [])],
                                   frames=params.get("frames"), continuity=params.get("continuity", True))
            version = gen.publish_render(s, project, params["shot"], plan, idempotency_key=key,
                                         progress=lambda n: beat(n / plan.frame_count, f"frame {n}/{plan.frame_count}"))
        elif kind == JobKind.retrain_adapter:
            steps = max(1, int((backlot.get_version(s, params["source"]).recipe or {}).get("steps", 1)))
            # an override recorded on the source adapter is replayed by retrain_adapter, for what it covered
            version = gen.retrain_adapter(s, params["source"], inputs=_swaps(s, params), idempotency_key=key,
                                          clearance_override=_override(params),
                                          progress=lambda step, loss: beat(min(step / steps, 0.99), f"loss {loss:.4f}"))
            if params.get("approval") == "auto" and version.status != "approved":
                backlot.set_status(s, version.id, "approved", actor="backlot-regen",
                                   note="approved automatically: the project's adapter approval is auto")
            elif version.status == "wip":  # its shots wait for a person to approve it
                backlot.set_status(s, version.id, "review", actor="backlot-regen",
                                   note="retrained by a regeneration: approve it to release the shots that use it")
        elif "inputs" in params:  # a regeneration plan item: upstream exactly as planned
            version = gen.rerender_version(s, params["source"], continuity=_continuity(s, params),
                                           inputs=_swaps(s, params), idempotency_key=key,
                                           progress=lambda n: beat(0.5, f"frame {n}"))
        else:  # a job queued before plans named their inputs
            neighbour = continuity if params.get("continuity_from_dependency") else None
            version = gen.rerender_version(s, params["source"], continuity=neighbour,
                                           idempotency_key=key, progress=lambda n: beat(0.5, f"frame {n}"))
        jobs.finish_job(s, job_id, version.id)
        return version.id, take_due(s)


def _override(params: dict):
    """The clearance override the requester recorded on the job, if any."""
    from backlot.provenance import ClearanceOverride

    record = params.get("clearance_override")
    return ClearanceOverride(record["reason"], record.get("by")) if record else None


def _result_of(session, job_id: int) -> int:
    from backlot.db.jobs import Job

    job = session.get(Job, job_id)
    if job is None or job.state != JobState.done or job.result_version_id is None:
        raise BacklotError(f"job {job_id} this one waits for has no result")
    return job.result_version_id


def _swaps(session, params: dict) -> dict[int, int]:
    """A plan item's input swaps: old version id -> new version id (a job's result when it made it)."""
    return {s["old"]: s["new"] if s.get("new") is not None else _result_of(session, s["job"])
            for s in params.get("inputs", [])}


def _continuity(session, params: dict) -> int | None:
    source = params.get("continuity") or {}
    if "job" in source:
        return _result_of(session, source["job"])
    return source.get("version")


def send_due(due: list[tuple[int, str]]) -> None:
    """Send what the finishing transaction marked dispatched (the next job of a chain at once)."""
    if not due:
        return
    try:
        send(app, due)
    except Exception as exc:  # noqa: BLE001 - requeued; the periodic dispatcher will try again
        log.warning("dispatch after a job failed: %s", exc)


@worker_process_init.connect
def warm_up(**_kwargs) -> None:
    """Before the first task: start the preview-encoder helper and load the base model (with
    `--warm`), once per worker process, so that no task pays for them."""
    from backlot.generation.encoder import start_helper

    try:
        start_helper()
    except OSError as exc:  # the first preview will try again and report it
        log.warning("could not start the preview encoder: %s", exc)
    from backlot.services.worker.registry import record_process

    ref = os.environ.get("BACKLOT_WARM_MODEL")
    record_process(warm=ref)  # `backlot worker status` lists this process (and what it loaded)
    if not ref:
        return
    from backlot.generation.loading import load_pipeline
    from backlot.generation.models import version_folder

    try:
        with backlot.session() as s:
            version = backlot.get_version(s, ref)
        load_pipeline(version.content_hash, version_folder(version))
        record_process(warm=ref, loaded=[version.ref])
    except BacklotError as exc:
        log.warning("could not warm %s: %s", ref, exc)


@worker_ready.connect
def start_dispatcher(sender=None, **_kwargs) -> None:
    from backlot.services.worker.dispatch import start_dispatch_loop

    start_dispatch_loop(app)
