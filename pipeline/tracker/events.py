"""The append-only event log: every mutation of the tracker writes one row here."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from backlot.db.models import Event, EventKind


def record_event(session: Session, project_id: int, kind: EventKind, actor: str,
                 version_id: int | None = None, **payload: Any) -> None:
    session.add(Event(project_id=project_id, kind=kind, actor=actor, version_id=version_id, payload=payload))


def list_events(session: Session, project_id: int, after_id: int = 0, limit: int = 1000) -> list[Event]:
    from sqlalchemy import select

    stmt = select(Event).where(Event.project_id == project_id, Event.id > after_id).order_by(Event.id).limit(limit)
    return list(session.scalars(stmt))
