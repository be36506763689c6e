"""One database session per request, committed before the response is sent."""

from __future__ import annotations

from typing import Iterator

from fastapi import Request
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from backlot.db.engine import ensure_schema, resolve_url, session_scope
from backlot.services.api.config import ApiSettings


def make_engine(settings: ApiSettings) -> Engine:
    """Our own pool, sized for the server's concurrency; the schema must be at the head revision."""
    url = resolve_url(settings.backlot)
    engine = create_engine(url, pool_pre_ping=True, pool_size=settings.pool_size, max_overflow=settings.pool_size // 2)
    ensure_schema(engine, auto_upgrade=settings.backlot.embedded)
    return engine


def db_session(request: Request) -> Iterator[Session]:
    """Used with `Depends(db_session, scope="function")`: a failed commit is the request's error, not a lost write."""
    with session_scope(request.app.state.engine) as session:
        yield session
