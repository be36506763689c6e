"""Workers, jobs and regeneration: `backlot worker`, `backlot jobs`, `backlot regen`."""

from __future__ import annotations

import os
import re
import time
from typing import Optional

import typer
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn
from rich.text import Text

import backlot
from backlot import jobs as job_service
from backlot.services.cli.output import emit_json, emit_table, err, out, user_errors

jobs_app = typer.Typer(help="Dispatched work: list, watch, cancel.", invoke_without_command=True)
regen_app = typer.Typer(help="Regenerate what is stale: adapters, then shots.", no_args_is_help=True)
worker_app = typer.Typer(help="Run a worker (the default), or check this worker host: `backlot worker status`.",
                         invoke_without_command=True)

JSON_OPT = typer.Option(False, "--json", help="Print JSON on stdout (nothing else).")


@worker_app.callback()
def worker(ctx: typer.Context,
           queues: str = typer.Option("gpu,cpu", help="Comma-separated queues to consume."),
           concurrency: int = typer.Option(1, help="Worker processes: one per GPU."),
           warm: Optional[str] = typer.Option(None, help="Base model to load at process start (a version ref)."),
           loglevel: str = typer.Option("info")) -> None:
    """Start a Celery worker (prefork, prefetch 1, late acks)."""
    if ctx.invoked_subcommand:
        return
    with user_errors():
        if warm:
            os.environ["BACKLOT_WARM_MODEL"] = warm
        from backlot.services.worker.app import app
        from backlot.services.worker.broker import EX_UNAVAILABLE, PostgresTransport
        from backlot.db import embedded
        from backlot.db.engine import get_engine
        from backlot.services.worker.process import follow_parent

        follow_parent()
        # The database is there (the embedded one started) before we rely on it; the check's
        # connection is closed, so that none is shared with the pool processes forked next.
        get_engine().dispose()
        embedded.INITIALISE = False  # ... and never replaced by an empty one if its folder vanishes
        PostgresTransport.keep_trying = True  # a worker waits out a database outage (with backoff)
        app.worker_main(["worker", f"--queues={queues}", f"--concurrency={concurrency}", f"--loglevel={loglevel}",
                         "--pool=prefork", "--without-gossip", "--without-mingle", f"--hostname=backlot-{os.getpid()}@%h"])
        if PostgresTransport.gone:
            raise typer.Exit(EX_UNAVAILABLE)


@worker_app.command("status")
def worker_status(json_: bool = JSON_OPT,
                  expect_workers: int = typer.Option(0, "--expect-workers", metavar="N",
                                                     help="Also fail unless N workers run on this host.")) -> None:
    """What this worker host can reach (broker, database and its schema, store), its device, and
    the workers running here with their loaded models and jobs. Exit 1 when something needed is down."""
    from backlot.services.worker.health import host_status

    with user_errors():
        status = host_status(expect_workers)
    if json_:
        emit_json(status.to_dict())
    else:
        _print_host_status(status)
    if not status.ok:
        raise typer.Exit(1)


def _print_host_status(status) -> None:
    for name, check in status.checks.items():
        mark = Text("ok  ", style="green") if check.ok else Text("DOWN", style="bold red")
        out.print(Text.assemble(f"{name:>8}  ", mark, "  ", check.detail), soft_wrap=True)
    if status.workers:
        emit_table(f"Workers on {status.host}", ["worker", "process", "device", "loaded", "job", "progress"],
                   [(w["parent_pid"] or "?", w["pid"], w["device"] or "",
                     "unknown" if w["loaded"] is None else ", ".join(w["loaded"]) or "none",
                     f"{w['job']['id']} {w['job']['kind']} ({w['job']['project']})" if w["job"] else "idle",
                     f"{w['job']['progress']:.0%} {w['job']['note'] or ''}".strip() if w["job"] else "")
                    for w in status.workers])
    for job in status.orphaned_jobs:
        err.print(f"job {job['id']} ({job['kind']}, {job['project']}) was running in {job['worker']}, which is gone: "
                  "it will be sent again", markup=False, soft_wrap=True)


@jobs_app.callback()
def jobs_list(ctx: typer.Context, project: Optional[str] = typer.Option(None),
              active: bool = typer.Option(False, "--active", help="Only queued, dispatched and running jobs."),
              watch: bool = typer.Option(False, "--watch", help="Follow progress until nothing is active."),
              json_: bool = JSON_OPT) -> None:
    """List jobs (newest first)."""
    if ctx.invoked_subcommand:
        return
    with user_errors():
        if watch:
            _watch(project)
            return
        with backlot.session() as s:
            rows = job_service.list_jobs(s, project, active_only=active)
    if json_:
        emit_json([r.to_dict() for r in rows])
        return
    emit_table("Jobs", ["id", "project", "kind", "state", "progress", "attempts", "result", "why / error"],
               [(r.id, r.project, r.kind, r.state, f"{r.progress:.0%}", f"{r.attempts}/{r.max_attempts}",
                 r.result_version_id, _why(r)) for r in rows])


def _why(job) -> str:
    """Why a job is where it is: what it waits for, when it was (re-)sent, or its error."""
    if job.waiting_for:
        return f"waits for {job.waiting_for}"
    if job.state == "dispatched":
        sent = "re-sent" if job.attempts else "sent"
        return f"{sent} at {job.updated_at:%H:%M:%S}, not taken by a worker yet"
    return (job.error or "")[:80]


@jobs_app.command("cancel")
def jobs_cancel(job_id: int) -> None:
    """Cancel a job; a running one stops at its next progress report."""
    with user_errors(), backlot.session() as s:
        record = job_service.cancel_job(s, job_id)
    out.print(f"job {record.id} cancelled", markup=False)


def _watch(project: Optional[str], batch: Optional[str] = None, ids: Optional[set[int]] = None) -> None:
    """Progress bars until nothing is active; a job held by a review gate is not waited for."""
    progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[state]}"), console=err)
    tasks: dict[int, int] = {}
    with Live(progress, console=err, transient=False):
        while True:
            with backlot.session() as s:
                rows = job_service.list_jobs(s, project, batch=batch, limit=10_000 if ids else 200)
            if ids is not None:
                rows = [r for r in rows if r.id in ids]
            for r in rows:
                if r.id not in tasks:
                    tasks[r.id] = progress.add_task(f"job {r.id} {r.kind}", total=1.0, state=r.state)
                progress.update(tasks[r.id], completed=r.progress, state=r.state)
            held = _held(rows)
            if not any(r.state in ("queued", "dispatched", "running") and r.id not in held for r in rows):
                return
            time.sleep(0.5)


def _held(rows) -> set[int]:
    """Jobs held by a review gate, directly or behind a job that is."""
    held = {r.id for r in rows if r.state == "waiting_approval"}
    waits = {r.id: int(m.group(1)) for r in rows if r.waiting_for and (m := re.match(r"job (\d+) ", r.waiting_for))}
    grew = True
    while grew:
        grew = False
        for job, other in waits.items():
            if other in held and job not in held:
                held.add(job)
                grew = True
    return held


@regen_app.command("plan")
def regen_plan(project: str, sequence: Optional[str] = typer.Option(None), json_: bool = JSON_OPT) -> None:
    """What is stale and will be remade, in order: adapters retrained, then shots re-rendered;
    why each is stale, what it swaps, and what it waits for."""
    with user_errors(), backlot.session() as s:
        items = backlot.plan_regeneration(s, project, sequence)
    if json_:
        emit_json([i.to_dict() for i in items])
        return
    print_plan(project, items)


def print_plan(project: str, items) -> None:
    """The plan as a table: refs without the project, swaps as `role: old -> new`."""
    number = {item.key: n for n, item in enumerate(items, 1)}
    short = lambda text: text.replace(f"{project}/", "")  # noqa: E731

    def swap(w) -> str:
        new = f"#{number[w.from_item]}" if w.from_item in number else short(w.new)
        return f"{w.role}: {short(w.old)} -> {new}"

    emit_table(f"Regeneration plan for {project}", ["#", "do", "remake", "because", "swaps", "continuity", "waits for"],
               [(number[i.key], i.action, short(i.version), short(i.reason), "\n".join(swap(w) for w in i.swaps),
                 short(i.continuity) if i.kind == "shot_render" else "",
                 i.blocked or ", ".join(sorted((f"#{number[k]}" for k in i.waits_for if k in number),
                                               key=lambda s: int(s[1:]))))
                for i in items])
    if not items:
        out.print("nothing to regenerate")


@regen_app.command("run")
def regen_run(project: str, sequence: Optional[str] = typer.Option(None),
              wait: bool = typer.Option(True, help="Follow progress until the regeneration is done."),
              json_: bool = JSON_OPT) -> None:
    """Write the plan's jobs and start them: adapters retrain first, each sequence's shots render
    in editorial order once what they use is ready. A plan already in flight is not queued twice."""
    with user_errors():
        from backlot.services.worker.app import app
        from backlot.services.worker.submit import regenerate

        result = regenerate(app, project, sequence)
        ids = [r.id for r in result.jobs] + list(result.in_flight.values())
        if wait and ids:
            _watch(project, ids=set(ids))
        with backlot.session() as s:
            rows = [r for r in job_service.list_jobs(s, project, limit=10_000) if r.id in set(ids)]
    if json_:
        emit_json({"batch": result.batch, "plan": [i.to_dict() for i in result.plan],
                   "jobs": [r.to_dict() for r in rows], "in_flight": result.in_flight,
                   "skipped": [i.key for i in result.skipped]})
        return
    _report(result, rows)


def _report(result, rows) -> None:
    if result.in_flight:
        batches = sorted({r.batch for r in rows if r.id in set(result.in_flight.values()) and r.batch})
        out.print(f"already in flight: {len(result.in_flight)} item(s) of regeneration {', '.join(batches)} "
                  f"(jobs {', '.join(map(str, sorted(set(result.in_flight.values()))))}); nothing queued twice",
                  markup=False)
    if result.jobs:
        out.print(f"regeneration {result.batch}: {len(result.jobs)} job(s) "
                  f"({sum(1 for i in result.plan if i.action == 'retrain' and not i.blocked)} adapter(s), "
                  f"{sum(1 for i in result.plan if i.action == 'render' and not i.blocked)} shot(s))", markup=False)
    elif not result.in_flight:
        out.print("nothing to regenerate")
    for item in result.skipped:
        err.print(f"not remade: {item.version}: {item.blocked}", markup=False, soft_wrap=True)
    for r in rows:
        if r.state == "failed" or (r.state == "cancelled" and r.error):
            err.print(f"job {r.id} {r.state}: {r.error}", markup=False, soft_wrap=True)
        elif r.waiting_for:
            err.print(f"job {r.id} waits for {r.waiting_for}", markup=False, soft_wrap=True)
    if any(r.state == "failed" for r in rows):
        raise typer.Exit(1)
