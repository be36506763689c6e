"""The FastAPI application: routers, error handlers, body limits, access checks, the webhook dispatcher."""

from __future__ import annotations

import os
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse

from backlot.storage import Store
from backlot.services.api import errors
from backlot.services.api.auth import annotate_roles, public
from backlot.services.api.config import ApiSettings, WebhookSettings
from backlot.services.api.db import make_engine
from backlot.services.api.limits import BodyLimit
from backlot.services.api.review.pages import router as review_router
from backlot.services.api.routes import ROUTERS
from backlot.services.api.webhooks import Dispatcher

DESCRIPTION = """Backlot's tracker over HTTP: projects, shots in editorial order, versions, lineage,
the stale set, events, review (approve, reject, notes), media by content hash, webhooks.

Every route needs an API token (`backlot token create --project P --role R`) sent as
`Authorization: Bearer TOKEN`; a token sees only its project. Roles: viewer (read),
artist (+ publish, notes), supervisor (+ approve, reject), admin (+ settings, webhooks).
Each operation's role is in its `x-backlot-role` field. Errors are `{"error": "..."}`.
"""


WEBHOOKS_ENV = "BACKLOT_API_WEBHOOKS"


def app_from_env() -> FastAPI:
    """The app configured like the CLI (environment, backlot.toml); BACKLOT_API_WEBHOOKS=off stops deliveries."""
    enabled = os.environ.get(WEBHOOKS_ENV, "on").lower() not in ("off", "0", "false", "no")
    return create_app(ApiSettings(webhooks=WebhookSettings(enabled=enabled)))


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    settings = settings or ApiSettings()
    engine = make_engine(settings)
    dispatcher = Dispatcher(engine, settings.webhooks)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if settings.webhooks.enabled:
            dispatcher.start()
        try:
            yield
        finally:
            dispatcher.stop()
            engine.dispose()

    app = FastAPI(title="Backlot", version="1", description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.engine = engine
    app.state.store = Store(settings.backlot.store_url)
    app.state.dispatcher = dispatcher
    errors.install(app)
    app.add_middleware(BodyLimit, max_json=settings.max_json_bytes, max_upload=settings.max_upload_bytes)

    for router in [health_router, *ROUTERS, review_router]:
        app.include_router(annotate_roles(router))
    return app


health_router = APIRouter(tags=["health"])


@health_router.get("/healthz", openapi_extra=public())
def health() -> JSONResponse:
    """Liveness: the process answers (no token, no database)."""
    return JSONResponse({"ok": True})
