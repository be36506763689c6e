"""`backlot kitsu link|sync|show`: review in Kitsu."""

from __future__ import annotations

import os
from typing import List, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

import backlot
from backlot.services.cli.output import emit_json, emit_table, escape, fail, out, user_errors

app = typer.Typer(help="Review in Kitsu: link a production, push previews, pull statuses and notes.",
                  no_args_is_help=True)
JSON_OPT = typer.Option(False, "--json", help="Print JSON on stdout (nothing else).")


def _parse_status_map(text: str | None) -> dict[str, str] | None:
    if text is None:
        return None
    pairs = [p.strip() for p in text.split(",") if p.strip()]
    if not all("=" in p for p in pairs):
        raise fail(f"--status-map {text!r}: write KITSU_SHORT_NAME=BACKLOT_STATUS pairs, e.g. done=approved,retake=rejected")
    return dict(p.split("=", 1) for p in pairs)


@app.command("link")
def link(project: str,
         url: str = typer.Option(..., "--url", help="Zou's API root, e.g. https://kitsu.example.com/api"),
         bot_token: Optional[str] = typer.Option(None, "--bot-token", help="A Kitsu bot's token (or BACKLOT_KITSU_SECRET)."),
         login: Optional[str] = typer.Option(None, "--login", help="A Kitsu user's email; the password is asked for "
                                                                "(or read from BACKLOT_KITSU_PASSWORD)."),
         production: Optional[str] = typer.Option(None, help="Kitsu production name (default: the project's name)."),
         task_type: str = typer.Option("Animation", "--task-type", help="Task type the previews go to."),
         create: bool = typer.Option(False, "--create", help="Create the production in Kitsu if it is missing."),
         status_map: Optional[str] = typer.Option(None, "--status-map",
                                                  help="Kitsu status → Backlot status, e.g. done=approved,retake=rejected "
                                                       "(default: approved/done→approved, retake/rejected→rejected, wfa→review)."),
         events_url: Optional[str] = typer.Option(None, "--events-url", help="Kitsu's event stream, when it is not "
                                                                          "served beside the API (Zou's event_stream)."),
         json_: bool = JSON_OPT) -> None:
    """Link PROJECT to a Kitsu production and keep the credentials for later syncs."""
    from backlot.integrations.kitsu import link_project
    from backlot.integrations.kitsu.client import Credentials

    if bool(bot_token) == bool(login):
        raise fail("give either --bot-token TOKEN or --login EMAIL")
    if login:
        password = os.environ.get("BACKLOT_KITSU_PASSWORD") or typer.prompt(f"Kitsu password for {login}", hide_input=True)
        credentials = Credentials("login", password, login)
    else:
        credentials = Credentials("bot-token", bot_token)
    with user_errors(), backlot.session() as s:
        record = link_project(s, project, url, credentials, production=production, task_type=task_type,
                              create=create, status_map=_parse_status_map(status_map), events_url=events_url)
    if json_:
        emit_json(record.to_dict())
        return
    out.print(f"linked {escape(project)} to Kitsu production [bold]{escape(record.production_name)}[/] at "
              + escape(f"{record.url} (task type {record.task_type})"), soft_wrap=True)


@app.command("show")
def show(project: str, json_: bool = JSON_OPT) -> None:
    """The project's Kitsu link (no secret is shown)."""
    from backlot.integrations.kitsu import get_link

    with user_errors(), backlot.session() as s:
        record = get_link(s, project)
    if json_:
        emit_json(record.to_dict())
        return
    emit_table(f"{project} ↔ Kitsu", ["url", "production", "task type", "auth", "status map"],
               [(record.url, record.production_name, record.task_type, record.auth,
                 ", ".join(f"{k}→{v}" for k, v in record.status_map.items()))])


@app.command("sync")
def sync(project: str,
         push: bool = typer.Option(False, "--push", help="Only push (default: push, then pull)."),
         pull: bool = typer.Option(False, "--pull", help="Only pull (default: push, then pull)."),
         version: List[str] = typer.Option([], "--version", help="Push these versions (default: every shot's "
                                                                  "newest render not yet in Kitsu)."),
         create_missing: bool = typer.Option(False, "--create-missing", help="Create sequences and shots missing in Kitsu."),
         dry_run: bool = typer.Option(False, "--dry-run", help="Say what would be sent and brought back; change nothing."),
         json_: bool = JSON_OPT) -> None:
    """Push new shot renders to Kitsu as previews; bring review statuses and comments back."""
    from backlot.integrations.kitsu import sync_project

    both = not push and not pull
    with user_errors(), _progress(json_) as tick:
        report = sync_project(project, push=push or both, pull=pull or both, versions=version,
                              create_missing=create_missing, dry_run=dry_run, progress=tick)
    if json_:
        emit_json(report.to_dict())
    else:
        _print_report(report)
    if report.failures:
        raise typer.Exit(2)


@app.command("watch")
def watch(project: str,
          poll: float = typer.Option(60.0, "--poll", help="Seconds between pulls when no event arrives."),
          json_: bool = typer.Option(False, "--json", help="One JSON line per sync on stdout.")) -> None:
    """Sync, then pull whenever Kitsu's event stream reports a comment (and every --poll seconds)."""
    import json as json_lib

    from backlot.integrations.kitsu.watch import watch_project

    def show(report, why: str) -> None:
        if json_:
            print(json_lib.dumps({"why": why, **report.to_dict()}, default=str), flush=True)
        else:
            out.print(f"[dim]{escape(why)}:[/] ", end="")
            _print_report(report)

    with user_errors():
        try:
            watch_project(project, poll_seconds=poll, on_report=show)
        except KeyboardInterrupt:
            pass


def _progress(quiet: bool):
    from contextlib import contextmanager

    @contextmanager
    def bars():
        if quiet:
            yield None
            return
        tasks: dict[str, int] = {}
        with Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[label]}", markup=False), console=out, transient=True,
                      disable=not out.is_interactive) as progress:  # off a terminal it would print an empty line
            def tick(stage: str, done: int, total: int, label: str) -> None:
                if stage not in tasks:
                    tasks[stage] = progress.add_task(stage, total=total, label="")
                progress.update(tasks[stage], completed=done, label=label)
            yield tick
    return bars()


def _print_report(report) -> None:
    verb = "would push" if report.dry_run else "pushed"
    items = report.to_push if report.dry_run else report.pushed
    out.print(escape(f"{report.project}: {verb} {len(items)} preview(s); "
                     f"{len(report.pulled.notes)} new note(s); {len(report.pulled.statuses)} status change(s)")
              + (" [dim](dry run: nothing changed)[/]" if report.dry_run else ""), soft_wrap=True)
    if report.dry_run and report.to_push:
        emit_table("to push", ["version", "shot", "sequence", "action"],
                   [(i.ref, i.shot, i.sequence, i.action) for i in report.to_push])
    if report.pulled.statuses:
        emit_table("statuses from Kitsu", ["version", "from", "to", "by"],
                   [(c["version"], c["from"], c["to"], c["by"]) for c in report.pulled.statuses])
    for failure in report.failures:
        out.print(f"[bold red]failed:[/] {escape(str(failure))} — sync again to retry", soft_wrap=True)
