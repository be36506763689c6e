"""SQLAlchemy 2.0 typed models: the tracker's tables.

Invariants the database enforces itself (see migrations/versions/0001_initial.py for the
triggers): version content, recipe and inputs are immutable; version numbers are 1..n per
asset without gaps; an input is always an older version (`input_id < version_id`), so the
lineage graph is acyclic by construction.

`versions.superseded`, `versions.live` and the `live_inputs` table are a cache derived by
triggers from statuses and inputs; they let the stale query start from the few superseded
inputs that still feed live work instead of scanning the whole graph.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Enum,
    FetchedValue,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
ASSET_NAME_PATTERN = r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$"


class AssetKind(str, enum.Enum):
    concept_art = "concept_art"
    adapter = "adapter"
    base_model = "base_model"
    shot_render = "shot_render"
    reference = "reference"


class VersionStatus(str, enum.Enum):
    wip = "wip"
    review = "review"
    approved = "approved"
    rejected = "rejected"


class InputRole(str, enum.Enum):
    training_data = "training_data"
    base_model = "base_model"
    adapter = "adapter"
    concept_art = "concept_art"
    init_image = "init_image"
    continuity = "continuity"
    regenerated_from = "regenerated_from"


class StalePolicy(str, enum.Enum):
    approved = "approved"  # an input is superseded by a newer *approved* version
    latest = "latest"  # ... by any newer version that is not rejected


class EventKind(str, enum.Enum):
    project_created = "project_created"
    project_updated = "project_updated"
    sequence_created = "sequence_created"
    shot_created = "shot_created"
    asset_created = "asset_created"
    version_created = "version_created"
    status_changed = "status_changed"
    note_added = "note_added"
    job_finished = "job_finished"
    cut_imported = "cut_imported"


def _pg_enum(enum_cls: type[enum.Enum], name: str) -> Enum:
    return Enum(enum_cls, name=name, values_callable=lambda e: [m.value for m in e])


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSONB, datetime: DateTime(timezone=True)}


class Project(Base):
    __tablename__ = "projects"
    __table_args__ = (
        CheckConstraint(f"code ~ '{CODE_PATTERN}'", name="code_format"),
        CheckConstraint("fps_num > 0 AND fps_den > 0", name="fps_positive"),
        CheckConstraint("width > 0 AND height > 0", name="resolution_positive"),
        CheckConstraint("adapter_approval IN ('review', 'auto')", name="adapter_approval_valid"),
        # Codes are unique without regard to case (references resolve either case): migration 0008.
        Index("uq_projects_lower_code", text("lower(code)"), unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    # Frame rate as an exact fraction: 24000/1001, never 23.976.
    fps_num: Mapped[int] = mapped_column(Integer, server_default=text("24"))
    fps_den: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    width: Mapped[int] = mapped_column(Integer, server_default=text("1920"))
    height: Mapped[int] = mapped_column(Integer, server_default=text("1080"))
    stale_policy: Mapped[StalePolicy] = mapped_column(
        _pg_enum(StalePolicy, "stale_policy"), server_default=StalePolicy.approved.value
    )
    # How a regeneration's retrained adapters are approved: "review" (its shots wait) or "auto".
    adapter_approval: Mapped[str] = mapped_column(String(16), server_default="review")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Sequence(Base):
    __tablename__ = "sequences"
    __table_args__ = (
        UniqueConstraint("project_id", "code"),
        CheckConstraint(f"code ~ '{CODE_PATTERN}'", name="code_format"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Shot(Base):
    """An editorial unit. Frames are integers; `cut_out` is inclusive."""

    __tablename__ = "shots"
    __table_args__ = (
        UniqueConstraint("project_id", "code"),
        CheckConstraint(f"code ~ '{CODE_PATTERN}'", name="code_format"),
        CheckConstraint("cut_out >= cut_in", name="cut_range_order"),
        CheckConstraint("handles >= 0", name="handles_non_negative"),
        Index("ix_shots_project_order", "project_id", "editorial_order"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    sequence_id: Mapped[int | None] = mapped_column(ForeignKey("sequences.id", ondelete="SET NULL"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    cut_in: Mapped[int] = mapped_column(Integer, server_default=text("1001"))
    cut_out: Mapped[int] = mapped_column(Integer)  # inclusive
    handles: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    editorial_order: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Asset(Base):
    __tablename__ = "assets"
    __table_args__ = (
        UniqueConstraint("project_id", "name"),
        CheckConstraint(f"name ~ '{ASSET_NAME_PATTERN}'", name="name_format"),
        CheckConstraint("latest_number >= 0", name="latest_number_non_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[AssetKind] = mapped_column(_pg_enum(AssetKind, "asset_kind"))
    shot_id: Mapped[int | None] = mapped_column(ForeignKey("shots.id", ondelete="SET NULL"), index=True)
    # Counter behind contiguous numbering: publishing bumps it under the row lock.
    latest_number: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # Highest approved version number, kept by triggers (NULL: none approved).
    approved_number: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Recipe(Base):
    """Everything needed to remake a generated version, stored canonically once per hash."""

    __tablename__ = "recipes"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    body: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Version(Base):
    __tablename__ = "versions"
    __table_args__ = (
        UniqueConstraint("asset_id", "number"),
        CheckConstraint("number >= 1", name="number_positive"),
        Index("ix_versions_project", "project_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="RESTRICT"))
    # Denormalised from the asset so that project-wide queries need no join.
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="RESTRICT"))
    number: Mapped[int] = mapped_column(Integer, server_default=FetchedValue())  # assigned by trigger
    content_hash: Mapped[str] = mapped_column(String(64))
    media_type: Mapped[str] = mapped_column(String(100))
    status: Mapped[VersionStatus] = mapped_column(_pg_enum(VersionStatus, "version_status"))
    recipe_id: Mapped[int | None] = mapped_column(ForeignKey("recipes.id", ondelete="RESTRICT"))
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", server_default=text("'{}'::jsonb"))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # Set by the job that made it: a task that runs twice publishes one version.
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    # Derived by triggers, never written by the application:
    superseded: Mapped[bool] = mapped_column(server_default=text("false"))
    live: Mapped[bool] = mapped_column(server_default=text("true"))
    # Where its pictures start: the first numbered image file and the first movie, in name order.
    first_image: Mapped[str | None] = mapped_column(Text, server_default=FetchedValue())
    first_movie: Mapped[str | None] = mapped_column(Text, server_default=FetchedValue())
    # The creating transaction: inputs and files may only be attached inside it.
    created_txid: Mapped[int] = mapped_column(BigInteger, server_default=text("txid_current()"))

    __mapper_args__ = {"eager_defaults": True}


class VersionFile(Base):
    """One file of a version: its name relative to the version folder, and its content hash."""

    __tablename__ = "version_files"
    __table_args__ = (CheckConstraint("size >= 0", name="size_non_negative"),)

    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id", ondelete="RESTRICT"), primary_key=True)
    path: Mapped[str] = mapped_column(Text, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)


class VersionInput(Base):
    """A lineage edge: `version_id` was made from `input_id` in the given role."""

    __tablename__ = "version_inputs"
    __table_args__ = (
        CheckConstraint("input_id < version_id", name="input_is_older"),
        Index("ix_version_inputs_input", "input_id"),
    )

    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id", ondelete="RESTRICT"), primary_key=True)
    input_id: Mapped[int] = mapped_column(ForeignKey("versions.id", ondelete="RESTRICT"), primary_key=True)
    role: Mapped[InputRole] = mapped_column(_pg_enum(InputRole, "input_role"), primary_key=True)


class LiveInput(Base):
    """Derived cache (triggers): the input edges of live versions, flagged when the input is superseded.

    Only edges that carry staleness are kept (not `regenerated_from`).
    """

    __tablename__ = "live_inputs"
    __table_args__ = (
        Index("ix_live_inputs_input", "input_id"),
        Index("ix_live_inputs_superseded", "project_id", postgresql_where=text("input_superseded")),
    )

    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id", ondelete="CASCADE"), primary_key=True)
    input_id: Mapped[int] = mapped_column(ForeignKey("versions.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[InputRole] = mapped_column(_pg_enum(InputRole, "input_role"), primary_key=True)
    project_id: Mapped[int] = mapped_column(Integer)
    input_superseded: Mapped[bool]


class Note(Base):
    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id", ondelete="RESTRICT"), index=True)
    author: Mapped[str] = mapped_column(String(100))
    body: Mapped[str] = mapped_column(Text)
    status_change: Mapped[VersionStatus | None] = mapped_column(_pg_enum(VersionStatus, "version_status"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Event(Base):
    """Append-only log of what changed; webhooks and review sync read from it."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_project_id", "project_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    kind: Mapped[EventKind] = mapped_column(_pg_enum(EventKind, "event_kind"))
    version_id: Mapped[int | None] = mapped_column(ForeignKey("versions.id", ondelete="RESTRICT"))
    actor: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
