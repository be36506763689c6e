"""`backlot db ...`: schema migrations and the embedded server."""

from __future__ import annotations

import typer

from backlot.config import load_settings
from backlot.db import migrate
from backlot.db.embedded import EmbeddedPostgres
from backlot.db.engine import get_engine
from backlot.services.cli.output import emit_json, out, user_errors

app = typer.Typer(help="Database schema and the embedded PostgreSQL server.", no_args_is_help=True)


@app.command()
def upgrade(revision: str = typer.Option("head", help="Target revision.")) -> None:
    """Migrate the schema up (to the head revision by default)."""
    with user_errors():
        engine = get_engine(check_schema=False)
        migrate.upgrade(engine, revision)
        out.print(f"database at revision {_current(engine)}", markup=False)


@app.command()
def downgrade(revision: str = typer.Option("-1", help="Target revision ('base' drops everything).")) -> None:
    """Migrate the schema down one revision (or to --revision)."""
    with user_errors():
        engine = get_engine(check_schema=False)
        migrate.downgrade(engine, revision)
        out.print(f"database at revision {_current(engine) or 'base (empty)'}", markup=False)


@app.command()
def status(json_: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Where the database is, whether it runs, and its schema revision."""
    with user_errors():
        settings = load_settings()
        info: dict = {"embedded": settings.embedded, "head": migrate.head_revision()}
        if settings.embedded:
            server = EmbeddedPostgres(settings.home).status()
            info |= {"data_dir": str(server.data_dir), "running": server.running, "pid": server.pid, "port": server.port}
        if not settings.embedded or info["running"]:
            info["revision"] = _current(get_engine(settings, check_schema=False))
        if json_:
            emit_json(info)
            return
        for key, value in info.items():
            out.print(f"{key:>10}: {value}", markup=False)


@app.command()
def start() -> None:
    """Start the embedded PostgreSQL server (and create its database on first use)."""
    with user_errors():
        settings = load_settings()
        embedded = EmbeddedPostgres(settings.home)
        embedded.start()
        get_engine(settings)  # migrate a fresh embedded database
        state = embedded.status()
        out.print(f"embedded PostgreSQL running (pid {state.pid}, port {state.port}, data {state.data_dir})",
                  markup=False)


@app.command()
def stop() -> None:
    """Stop the embedded PostgreSQL server."""
    with user_errors():
        stopped = EmbeddedPostgres(load_settings().home).stop()
        out.print("embedded PostgreSQL stopped" if stopped else "embedded PostgreSQL was not running")


def _current(engine) -> str | None:
    with engine.connect() as conn:
        return migrate.current_revision(conn)
