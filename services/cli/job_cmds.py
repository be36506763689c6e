"""Workers, jobs and regeneration: `backlot worker`, `backlot jobs`, `backlot regen`."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Optional

import typer
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn

import backlot
from backlot import jobs as job_service
from backlot.services.cli.output import emit_json, emit_table, err, out, user_errors

jobs_app = typer.Typer(help="Dispatched work: list, watch, cancel.", invoke_without_command=True)
regen_app = typer.Typer(help="Regenerate stale shots.", no_args_is_help=True)

JSON_OPT = typer.Option(False, "--json", help="Print JSON on stdout (nothing else).")


def worker(queues: str = typer.Option("gpu,cpu", help="Comma-separated queues to consume."),
           concurrency: int = typer.Option(1, help="Worker processes: one per GPU."),
           warm: Optional[str] = typer.Option(None, help="Base model to load at process start (a version ref)."),
           loglevel: str = typer.Option("info")) -> None:
    """Start a Celery worker (prefork, prefetch 1, late acks)."""
    with user_errors():
        if warm:
            os.environ["BACKLOT_WARM_MODEL"] = warm
        from backlot.services.worker.app import app

        app.worker_main(["worker", f"--queues={queues}", f"--concurrency={concurrency}", f"--loglevel={loglevel}",
                         "--pool=prefork", "--without-gossip", "--without-mingle", f"--hostname=backlot-{os.getpid()}@%h"])


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
    emit_table("Jobs", ["id", "project", "kind", "state", "progress", "attempts", "result", "error"],
               [(r.id, r.project, r.kind, r.state, f"{r.progress:.0%}", f"{r.attempts}/{r.max_attempts}",
                 r.result_version_id, (r.error or "")[:60]) for r in rows])


@jobs_app.command("cancel")
def jobs_cancel(job_id: int) -> None:
    """Cancel a job; a running one stops at its next progress report."""
    with user_errors(), backlot.session() as s:
        record = job_service.cancel_job(s, job_id)
    out.print(f"job {record.id} cancelled")


def _watch(project: Optional[str], batch: Optional[str] = None) -> None:
    progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[state]}"), console=err)
    tasks: dict[int, int] = {}
    with Live(progress, console=err, transient=False):
        while True:
            with backlot.session() as s:
                rows = job_service.list_jobs(s, project, batch=batch)
            for r in rows:
                if r.id not in tasks:
                    tasks[r.id] = progress.add_task(f"job {r.id} {r.kind}", total=1.0, state=r.state)
                progress.update(tasks[r.id], completed=r.progress, state=r.state)
            if not any(r.state in ("queued", "dispatched", "running") for r in rows):
                return
            time.sleep(0.5)


@regen_app.command("plan")
def regen_plan(project: str, sequence: Optional[str] = typer.Option(None), json_: bool = JSON_OPT) -> None:
    """The stale shots in editorial order, why, and what their new versions will use."""
    with user_errors(), backlot.session() as s:
        items = backlot.plan_regeneration(s, project, sequence)
    if json_:
        emit_json([i.to_dict() for i in items])
        return
    emit_table(f"Regeneration plan for {project}", ["#", "shot", "remake", "because", "swaps", "continuity", "frames"],
               [(i.editorial_order, i.shot, i.version.split("/", 1)[1], i.reason,
                 "; ".join(f"{w.role}: {w.old.split('@')[-1]}->{w.new.split('@')[-1]}" for w in i.swaps),
                 i.continuity, f"{i.frames[0]}-{i.frames[1]}") for i in items])
    if not items:
        out.print("nothing to regenerate")


@regen_app.command("run")
def regen_run(project: str, sequence: Optional[str] = typer.Option(None),
              wait: bool = typer.Option(True, help="Follow progress until the regeneration is done."),
              json_: bool = JSON_OPT) -> None:
    """Dispatch the plan: a chain of renders per sequence, sequences in parallel."""
    with user_errors():
        from backlot.services.worker.app import app
        from backlot.services.worker.submit import regenerate

        batch, items, chains = regenerate(app, project, sequence)
        if wait and chains:
            _watch(project, batch)
        with backlot.session() as s:
            rows = job_service.list_jobs(s, project, batch=batch)
    if json_:
        emit_json({"batch": batch, "plan": [i.to_dict() for i in items], "jobs": [r.to_dict() for r in rows]})
        return
    out.print(f"regeneration {batch}: {len(items)} shot(s) in {len(chains)} sequence chain(s)")
    failed = [r for r in rows if r.state == "failed"]
    for r in failed:
        err.print(f"job {r.id} failed: {r.error}")
    if failed:
        raise typer.Exit(1)
