"""`backlot serve`: the HTTP API and review page, with uvicorn (one process; run several behind a
proxy to use more cores: each has its own pool, and webhook passes are safe to run in several)."""

from __future__ import annotations

import os

import typer

from backlot.services.cli.output import err, user_errors


def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0 for every interface)."),
    port: int = typer.Option(8000, min=0, max=65535, help="Port to listen on."),
    webhooks: bool = typer.Option(True, "--webhooks/--no-webhooks", help="Deliver webhooks from this server."),
    log_level: str = typer.Option("info", help="uvicorn's log level: critical, error, warning, info, debug."),
) -> None:
    """Serve the HTTP API (/api, docs at /docs) and the review page (/review)."""
    import uvicorn

    from backlot.services.api.app import WEBHOOKS_ENV, app_from_env

    os.environ[WEBHOOKS_ENV] = "on" if webhooks else "off"
    with user_errors():
        app = app_from_env()  # checks the database and its schema before listening
    err.print(f"Backlot API on http://{host}:{port}  (review page /review, API docs /docs)", markup=False)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=log_level == "debug")
