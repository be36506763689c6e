"""Jobs: dispatched units of work (train, render), the transactional outbox for Celery.

A request writes its Job row in the same transaction as whatever asked for it; the
dispatcher sends queued jobs to the broker after commit and re-sends what a lost message or
a dead worker left behind. The row, not the broker, is the truth about a job.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column

from backlot.db.models import Base, _pg_enum


class JobKind(str, enum.Enum):
    train_adapter = "train_adapter"
    render_shot = "render_shot"
    rerender = "rerender"
    retrain_adapter = "retrain_adapter"  # replay an adapter's training recipe on current inputs


class JobState(str, enum.Enum):
    queued = "queued"  # written, not yet handed to the broker
    dispatched = "dispatched"  # handed to the broker
    running = "running"  # a worker has it (heartbeat_at moves while it runs)
    done = "done"
    failed = "failed"  # out of attempts; error and traceback say why
    cancelled = "cancelled"


ACTIVE_STATES = (JobState.queued, JobState.dispatched, JobState.running)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint("attempts >= 0 AND max_attempts >= 1", name="attempts_valid"),
        CheckConstraint("progress >= 0 AND progress <= 1", name="progress_range"),
        Index("ix_jobs_active", "state", "updated_at",
              postgresql_where=text("state IN ('queued', 'dispatched', 'running')")),
        Index("ix_jobs_project_id", "project_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    kind: Mapped[JobKind] = mapped_column(_pg_enum(JobKind, "job_kind"))
    queue: Mapped[str] = mapped_column(String(32), server_default="gpu")
    params: Mapped[dict[str, Any]]
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    state: Mapped[JobState] = mapped_column(_pg_enum(JobState, "job_state"), server_default=JobState.queued.value)
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    max_attempts: Mapped[int] = mapped_column(Integer, server_default=text("3"))
    progress: Mapped[float] = mapped_column(server_default=text("0"))
    progress_note: Mapped[str | None] = mapped_column(Text)
    # A job of a chain (regeneration of a sequence) runs after the one it depends on.
    depends_on_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    batch: Mapped[str | None] = mapped_column(String(64), index=True)
    result_version_id: Mapped[int | None] = mapped_column(ForeignKey("versions.id", ondelete="RESTRICT"))
    error: Mapped[str | None] = mapped_column(Text)
    traceback: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(200))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
    heartbeat_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]  # when the last attempt was claimed
    finished_at: Mapped[datetime | None]


class JobDependency(Base):
    """A job waits for another to be done; with `approval`, also for its result to be approved."""

    __tablename__ = "job_dependencies"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    depends_on_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True,
                                               index=True)
    approval: Mapped[bool] = mapped_column(server_default=text("false"))
