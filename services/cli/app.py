"""The `backlot` command: typer app assembled from the command modules."""

from __future__ import annotations

import typer

from backlot.services.cli import (
    backup_cmds,
    cut_cmds,
    db_cmds,
    demo,
    generation_cmds,
    job_cmds,
    kitsu_cmds,
    provenance_cmds,
    serve_cmds,
    store_cmds,
    token_cmds,
    tracker_cmds,
)

app = typer.Typer(help="Backlot: asset tracking and generation pipeline for films made with custom models.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
app.add_typer(db_cmds.app, name="db")
app.add_typer(tracker_cmds.project_app, name="project")
app.add_typer(tracker_cmds.shot_app, name="shot")
app.add_typer(cut_cmds.app, name="cut")
for command in (tracker_cmds.assets, tracker_cmds.publish, tracker_cmds.versions, tracker_cmds.show,
                tracker_cmds.approve, tracker_cmds.reject, tracker_cmds.note, tracker_cmds.lineage,
                tracker_cmds.stale):
    app.command()(command)
app.command("set-status")(tracker_cmds.set_status)
app.add_typer(generation_cmds.model_app, name="model")
app.add_typer(generation_cmds.adapter_app, name="adapter")
for command in (generation_cmds.render, generation_cmds.verify, generation_cmds.rerender):
    app.command()(command)
app.add_typer(job_cmds.worker_app, name="worker")
app.add_typer(job_cmds.jobs_app, name="jobs")
app.add_typer(job_cmds.regen_app, name="regen")
app.command()(demo.demo)
app.add_typer(token_cmds.app, name="token")
app.command()(serve_cmds.serve)
app.add_typer(kitsu_cmds.app, name="kitsu")
for command in (backup_cmds.backup, backup_cmds.restore):
    app.command()(command)
app.add_typer(provenance_cmds.app, name="provenance")
app.command()(provenance_cmds.clearance)
app.add_typer(provenance_cmds.rights_app, name="rights")
app.add_typer(store_cmds.app, name="store")


def main() -> None:
    app()
