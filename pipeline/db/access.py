"""HTTP access tables: API tokens, webhook subscribers, their deliveries and the delivery log.

Tokens are stored as the sha256 of the secret (the secret has 256 random bits, so a fast
hash is enough: nothing can be guessed from it). Webhook secrets must be kept in plain
text, since every delivery is signed with them; only admins of the project can read them,
and only when the subscriber is created.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
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
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from backlot.db.models import Base, VersionFile, _pg_enum


class Role(str, enum.Enum):
    """What a token may do in its project; each role can do everything the ones before it can."""

    viewer = "viewer"  # read everything of the project
    artist = "artist"  # + publish versions, write notes
    supervisor = "supervisor"  # + approve, reject, set statuses
    admin = "admin"  # + project settings, webhooks

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def allows(self, needed: "Role") -> bool:
        return self.rank >= needed.rank


class DeliveryState(str, enum.Enum):
    pending = "pending"  # waiting for its (next) attempt
    delivered = "delivered"  # the subscriber answered 2xx
    failed = "failed"  # out of attempts, or the subscriber was removed


class ApiToken(Base):
    __tablename__ = "api_tokens"
    __table_args__ = (CheckConstraint("length(name) > 0", name="name_not_empty"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    role: Mapped[Role] = mapped_column(_pg_enum(Role, "access_role"))
    # Who holds it: the actor recorded on what the token writes (notes, statuses, versions).
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # the start of the secret, to recognise it
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class WebhookSubscriber(Base):
    __tablename__ = "webhook_subscribers"
    __table_args__ = (CheckConstraint("url ~ '^https?://'", name="url_http"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(String(100))
    # Event kinds delivered (values of EventKind); empty means every kind.
    event_kinds: Mapped[list[str]] = mapped_column(ARRAY(String(64)), server_default=text("'{}'"))
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # Every event of the project at or below this id has been considered for this subscriber.
    watermark_event_id: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))


class WebhookDelivery(Base):
    """One event for one subscriber: its state and when to try next."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("subscriber_id", "event_id"),
        CheckConstraint("attempts >= 0", name="attempts_non_negative"),
        Index("ix_webhook_deliveries_due", "next_attempt_at", postgresql_where=text("state = 'pending'")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("webhook_subscribers.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    state: Mapped[DeliveryState] = mapped_column(_pg_enum(DeliveryState, "delivery_state"),
                                                 server_default=DeliveryState.pending.value)
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_attempt_at: Mapped[datetime] = mapped_column(server_default=func.now())
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    delivered_at: Mapped[datetime | None]


class WebhookAttempt(Base):
    """The delivery log: one row per HTTP attempt, successful or not."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    duration_ms: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)


# Media is served by content hash (services/api): find a project's file by its sha256 without
# scanning every file of every version.
Index("ix_version_files_sha256", VersionFile.sha256)
