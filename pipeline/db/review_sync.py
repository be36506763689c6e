"""Links to an external review tracker (Kitsu): what maps to what, what was uploaded, and
which of its comments came back as notes.

Kept generic (`system` names the tracker) and free of credentials: secrets live in the
user's Backlot home, never in a database many people can read. Every row is written as
soon as the remote side has the matching object, so a sync that stops half-way resumes
without duplicating anything.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Integer, String, UniqueConstraint, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from backlot.db.models import Base


class ReviewLink(Base):
    """A Backlot project linked to a production in a review tracker."""

    __tablename__ = "review_links"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    system: Mapped[str] = mapped_column(String(20))
    url: Mapped[str] = mapped_column(String(500))
    production_id: Mapped[str] = mapped_column(String(100))
    production_name: Mapped[str] = mapped_column(String(200))
    task_type: Mapped[str] = mapped_column(String(100))
    auth: Mapped[str] = mapped_column(String(20))  # "bot-token" or "login"
    login: Mapped[str | None] = mapped_column(String(200))
    events_url: Mapped[str | None] = mapped_column(String(500))  # the event stream, when not at `url`
    status_map: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class ReviewEntity(Base):
    """A Backlot sequence, shot or shot task and its id in the tracker."""

    __tablename__ = "review_entities"
    __table_args__ = (UniqueConstraint("project_id", "kind", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))  # sequence | shot | task
    name: Mapped[str] = mapped_column(String(200))
    external_id: Mapped[str] = mapped_column(String(100))


class ReviewUpload(Base):
    """A version sent for review: its comment first, then its preview (resumable between)."""

    __tablename__ = "review_uploads"

    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id", ondelete="RESTRICT"), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    task_id: Mapped[str] = mapped_column(String(100))
    comment_id: Mapped[str] = mapped_column(String(100))
    preview_id: Mapped[str | None] = mapped_column(String(100))
    revision: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    uploaded_at: Mapped[datetime | None]


class ReviewComment(Base):
    """A tracker comment already brought back as a Backlot note (so it is never brought twice)."""

    __tablename__ = "review_comments"

    external_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id", ondelete="RESTRICT"), index=True)
    note_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("notes.id", ondelete="CASCADE"))
    status: Mapped[str | None] = mapped_column(String(100))  # the tracker's status short name
