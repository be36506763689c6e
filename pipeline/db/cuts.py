"""Editorial tables: cut revisions, their items, change lists, per-project settings, and the
cut-coverage cache the stale query reads.

Frames are integers. Record frames are at the revision's rate and absolute (a cut that
starts at 01:00:00:00 at 24 fps starts at 86400); source frames are at the item's source
rate; shot frames (`cut_in`, `cut_out_incl`) are the shot's numbering (1001 by default).
Column names say which ends are inclusive (`_incl`) and which exclusive (`_excl`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from backlot.db.models import Base


class CutSettings(Base):
    """How a project reads its cuts: shot-mapping rules, which clips make the cut, shot frames."""

    __tablename__ = "cut_settings"
    __table_args__ = (
        CheckConstraint("handles >= 0", name="handles_non_negative"),
    )

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    rules: Mapped[list[Any]] = mapped_column(JSONB)  # [{"kind": ..., "pattern": ..., "key": ...}], in order
    track_policy: Mapped[str] = mapped_column(String(200), server_default=text("'visible'"))
    first_frame: Mapped[int] = mapped_column(Integer, server_default=text("1001"))
    handles: Mapped[int] = mapped_column(Integer, server_default=text("8"))
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class CutRevision(Base):
    """One imported cut: the file (by hash, kept in the store), how it was read, and its rate."""

    __tablename__ = "cut_revisions"
    __table_args__ = (
        UniqueConstraint("project_id", "number"),
        CheckConstraint("number >= 1", name="number_positive"),
        CheckConstraint("fps_num > 0 AND fps_den > 0", name="fps_positive"),
        CheckConstraint("record_out_excl > record_in", name="record_range_order"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)  # 1..n per project
    name: Mapped[str] = mapped_column(Text)  # the timeline's name
    source_file: Mapped[str] = mapped_column(Text)  # the file's name when imported
    file_sha256: Mapped[str] = mapped_column(String(64))
    file_size: Mapped[int] = mapped_column(BigInteger)
    stored_hash: Mapped[str] = mapped_column(String(64))  # the store folder holding the original file
    adapter: Mapped[str] = mapped_column(String(64))
    reader_options: Mapped[dict[str, Any]]
    # Same file, options and mapping settings as the latest revision: importing it again is a no-op.
    import_key: Mapped[str] = mapped_column(String(64))
    track_policy: Mapped[str] = mapped_column(String(200))
    fps_num: Mapped[int] = mapped_column(Integer)
    fps_den: Mapped[int] = mapped_column(Integer)
    record_in: Mapped[int] = mapped_column(Integer)  # first record frame of the cut
    record_out_excl: Mapped[int] = mapped_column(Integer)
    clip_count: Mapped[int] = mapped_column(Integer)
    matched_count: Mapped[int] = mapped_column(Integer)
    previous_id: Mapped[int | None] = mapped_column(ForeignKey("cut_revisions.id", ondelete="SET NULL"))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class CutItem(Base):
    """One clip (or visible part of one) of a revision, in editorial order, and the shot it maps to."""

    __tablename__ = "cut_items"
    __table_args__ = (
        CheckConstraint("record_out_excl > record_in", name="record_range_order"),
        CheckConstraint("source_out_excl > source_in", name="source_range_order"),
        CheckConstraint("needed_out_excl > needed_in", name="needed_range_order"),
        CheckConstraint("speed_den > 0 AND source_rate_num > 0 AND source_rate_den > 0", name="fractions_positive"),
        Index("ix_cut_items_revision_shot", "revision_id", "shot_code"),
    )

    revision_id: Mapped[int] = mapped_column(ForeignKey("cut_revisions.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)  # editorial order in the revision, from 1
    otio_path: Mapped[str] = mapped_column(String(200))  # child indices from timeline.tracks, dotted
    track: Mapped[str] = mapped_column(Text)
    track_index: Mapped[int] = mapped_column(Integer)  # 1-based among video tracks, bottom first
    clip_name: Mapped[str] = mapped_column(Text)
    reel: Mapped[str | None] = mapped_column(Text)
    media_url: Mapped[str | None] = mapped_column(Text)
    record_in: Mapped[int] = mapped_column(Integer)
    record_out_excl: Mapped[int] = mapped_column(Integer)
    source_rate_num: Mapped[int] = mapped_column(Integer)
    source_rate_den: Mapped[int] = mapped_column(Integer)
    clip_source_in: Mapped[int] = mapped_column(Integer)  # the OTIO clip's own in point
    source_in: Mapped[int] = mapped_column(Integer)  # source frames shown (retime applied)
    source_out_excl: Mapped[int] = mapped_column(Integer)
    speed_num: Mapped[int] = mapped_column(Integer)  # source frames per record frame, exact
    speed_den: Mapped[int] = mapped_column(Integer)
    freeze: Mapped[bool]
    transition_in: Mapped[int] = mapped_column(Integer)  # record frames of a transition before the cut
    transition_out: Mapped[int] = mapped_column(Integer)
    needed_in: Mapped[int] = mapped_column(Integer)  # source frames needed, transitions included
    needed_out_excl: Mapped[int] = mapped_column(Integer)
    # The shot by its code (codes never change); no foreign key: a cut's record outlives a deleted shot,
    # and thousands of rows are written per import.
    shot_code: Mapped[str | None] = mapped_column(String(64))
    match_rule: Mapped[str | None] = mapped_column(String(100))
    match_value: Mapped[str | None] = mapped_column(Text)
    cut_in: Mapped[int | None] = mapped_column(Integer)  # shot frames of the needed range
    cut_out_incl: Mapped[int | None] = mapped_column(Integer)


class CutChange(Base):
    """How one shot changed from the previous revision to this one (the stored change list)."""

    __tablename__ = "cut_changes"

    revision_id: Mapped[int] = mapped_column(ForeignKey("cut_revisions.id", ondelete="CASCADE"), primary_key=True)
    shot_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    kinds: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    old_cut_in: Mapped[int | None] = mapped_column(Integer)
    old_cut_out_incl: Mapped[int | None] = mapped_column(Integer)
    new_cut_in: Mapped[int | None] = mapped_column(Integer)
    new_cut_out_incl: Mapped[int | None] = mapped_column(Integer)
    old_position: Mapped[int | None] = mapped_column(Integer)
    new_position: Mapped[int | None] = mapped_column(Integer)
    needs_render: Mapped[bool | None]  # the new range falls outside the current version's frames
    detail: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))


class CutUncovered(Base):
    """Derived cache (triggers): current shot_render versions that do not cover their shot's
    cut range with handles. The stale query starts from these rows, so its cost follows them.
    """

    __tablename__ = "cut_uncovered"
    __table_args__ = (
        Index("ix_cut_uncovered_project", "project_id"),
        Index("ix_cut_uncovered_asset", "asset_id"),
    )

    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id", ondelete="CASCADE"), primary_key=True)
    asset_id: Mapped[int] = mapped_column(Integer)
    shot_id: Mapped[int] = mapped_column(Integer)
    project_id: Mapped[int] = mapped_column(Integer)
    need_first: Mapped[int] = mapped_column(Integer)  # inclusive, handles included
    need_last: Mapped[int] = mapped_column(Integer)
    have_first: Mapped[int | None] = mapped_column(Integer)  # NULL: the version's frame_range is malformed
    have_last: Mapped[int | None] = mapped_column(Integer)
