"""Webhook subscriptions and their deliveries, driven by the event table.

Each pass of a dispatcher (services/api/webhooks.py sends the HTTP requests):

1. `enqueue_events`: for every active subscriber, one delivery row per matching event of
   its project that has none yet (UNIQUE (subscriber, event): two dispatchers never
   enqueue twice). Event ids are handed out at insert but rows become visible at commit,
   so a later id can be seen before an earlier one; the subscriber's watermark therefore
   only moves over events older than `settle`, and the ids above it are re-checked each
   pass (an anti-join against the deliveries, cheap: it covers the last few minutes).
2. `claim_due`: a few due deliveries per subscriber, locked with SKIP LOCKED and leased
   (their next attempt is pushed past the lease), so concurrent dispatchers split the work
   and a dispatcher that dies mid-send only delays them.
3. `record_attempt` after each request: delivered, or retried with exponential back-off,
   or failed once out of attempts. Every attempt is logged in `webhook_attempts`.

Delivery is at least once: receivers deduplicate on the delivery id (or the event id).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from backlot.access.tokens import _now
from backlot.db.access import DeliveryState, WebhookAttempt, WebhookDelivery, WebhookSubscriber
from backlot.db.models import Event, EventKind, Project
from backlot.errors import InvalidInputError, NotFoundError
from backlot.tracker.projects import _actor, find_project
from backlot.tracker.records import _Record

SIGNATURE_HEADER = "X-Backlot-Signature"
TIMESTAMP_HEADER = "X-Backlot-Timestamp"
_URL_RE = re.compile(r"^https?://[^\s/?#@]+(:\d{1,5})?(/[^\s]*)?$")


@dataclass(frozen=True)
class SubscriberRecord(_Record):
    id: int
    project: str
    url: str
    event_kinds: list[str]
    active: bool
    created_by: str
    created_at: datetime


@dataclass(frozen=True)
class AttemptRecord(_Record):
    number: int
    started_at: datetime
    duration_ms: int
    status_code: int | None
    error: str | None


@dataclass(frozen=True)
class DeliveryRecord(_Record):
    id: int
    subscriber_id: int
    event_id: int
    event_kind: str
    state: str
    attempts: int
    next_attempt_at: datetime
    last_status: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    log: list[AttemptRecord] = field(default_factory=list)


@dataclass(frozen=True)
class DeliveryJob:
    """A claimed delivery, with everything needed to send it outside any transaction."""

    delivery_id: int
    subscriber_id: int
    url: str
    secret: str
    attempt: int  # the number this attempt will have (1 for the first)
    event_kind: str
    body: bytes


@dataclass(frozen=True)
class AttemptOutcome:
    started_at: datetime
    duration_ms: int
    status_code: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_delay_s: float = 10.0
    max_delay_s: float = 3600.0

    def delay(self, attempts: int) -> float:
        """Seconds before the next try after `attempts` failed ones: base, 2×base, 4×base ... capped."""
        return min(self.max_delay_s, self.base_delay_s * 2 ** max(0, attempts - 1))


# -- signatures ----------------------------------------------------------------------------


def sign_payload(secret: str, timestamp: int, body: bytes) -> str:
    """`sha256=HEX`: HMAC-SHA256 over `TIMESTAMP.BODY`, so a captured delivery cannot be replayed later."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(secret: str, timestamp: str | int, signature: str, body: bytes, *,
                     tolerance_s: int = 300, now: float | None = None) -> bool:
    """What a receiver checks: the signature matches and the timestamp is recent."""
    try:
        stamp = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((now if now is not None else time.time()) - stamp) > tolerance_s:
        return False
    return hmac.compare_digest(sign_payload(secret, stamp, body), signature or "")


# -- subscribers ---------------------------------------------------------------------------


def check_url(url: str) -> str:
    if not isinstance(url, str) or len(url) > 2000 or not url.isprintable() or not _URL_RE.match(url):
        raise InvalidInputError(f"webhook URL {url!r} is invalid: use http:// or https:// with a host, "
                                "no spaces or credentials, at most 2000 characters")
    return url


def check_event_kinds(kinds: list[str] | None) -> list[str]:
    known = [k.value for k in EventKind]
    wanted = list(dict.fromkeys(kinds or []))
    for kind in wanted:
        if kind not in known:
            raise InvalidInputError(f"event kind {kind!r} is unknown: use some of {', '.join(known)}")
    return wanted


def subscribe(session: Session, project: str, url: str, event_kinds: list[str] | None = None, *,
              actor: str | None = None) -> tuple[SubscriberRecord, str]:
    """A new subscriber for the project's future events; returns it and its signing secret (shown once)."""
    check_url(url)
    kinds = check_event_kinds(event_kinds)
    proj = find_project(session, project)
    start = session.scalar(select(func.coalesce(func.max(Event.id), 0)).where(Event.project_id == proj.id))
    secret = "whsec_" + secrets.token_urlsafe(32)
    sub = WebhookSubscriber(project_id=proj.id, url=url, secret=secret, event_kinds=kinds, created_by=_actor(actor),
                            watermark_event_id=start)
    session.add(sub)
    session.flush()
    return _subscriber_record(sub, proj.code), secret


def list_subscribers(session: Session, project: str) -> list[SubscriberRecord]:
    proj = find_project(session, project)
    rows = session.scalars(select(WebhookSubscriber).where(WebhookSubscriber.project_id == proj.id)
                           .order_by(WebhookSubscriber.id))
    return [_subscriber_record(s, proj.code) for s in rows]


def get_subscriber(session: Session, project: str, subscriber_id: int) -> SubscriberRecord:
    proj = find_project(session, project)
    return _subscriber_record(_find_subscriber(session, proj, subscriber_id), proj.code)


def unsubscribe(session: Session, project: str, subscriber_id: int) -> SubscriberRecord:
    """Stop deliveries to a subscriber; its pending deliveries fail, its log is kept."""
    proj = find_project(session, project)
    sub = _find_subscriber(session, proj, subscriber_id)
    sub.active = False
    session.execute(update(WebhookDelivery)
                    .where(WebhookDelivery.subscriber_id == sub.id, WebhookDelivery.state == DeliveryState.pending)
                    .values(state=DeliveryState.failed, last_error="subscriber removed"))
    session.flush()
    return _subscriber_record(sub, proj.code)


def _find_subscriber(session: Session, proj: Project, subscriber_id: int) -> WebhookSubscriber:
    sub = session.scalar(select(WebhookSubscriber).where(WebhookSubscriber.id == subscriber_id,
                                                         WebhookSubscriber.project_id == proj.id))
    if sub is None:
        raise NotFoundError(f"no webhook subscriber {subscriber_id} in project {proj.code}")
    return sub


def _subscriber_record(sub: WebhookSubscriber, project: str) -> SubscriberRecord:
    return SubscriberRecord(sub.id, project, sub.url, list(sub.event_kinds), sub.active, sub.created_by,
                            sub.created_at)


# -- the delivery log ----------------------------------------------------------------------


def list_deliveries(session: Session, project: str, *, subscriber_id: int | None = None,
                    state: str | None = None, limit: int = 100, offset: int = 0) -> tuple[list[DeliveryRecord], int]:
    """Deliveries of the project's subscribers, newest first, each with its attempts; and the total."""
    proj = find_project(session, project)
    stmt = (select(WebhookDelivery, Event.kind).join(Event, Event.id == WebhookDelivery.event_id)
            .join(WebhookSubscriber, WebhookSubscriber.id == WebhookDelivery.subscriber_id)
            .where(WebhookSubscriber.project_id == proj.id))
    if subscriber_id is not None:
        stmt = stmt.where(WebhookDelivery.subscriber_id == subscriber_id)
    if state is not None:
        stmt = stmt.where(WebhookDelivery.state == DeliveryState(state))
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.execute(stmt.order_by(WebhookDelivery.id.desc()).limit(limit).offset(offset)).all()
    log: dict[int, list[AttemptRecord]] = {}
    ids = [d.id for d, _ in rows]
    if ids:
        attempts = session.scalars(select(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(ids))
                                   .order_by(WebhookAttempt.delivery_id, WebhookAttempt.number))
        for a in attempts:
            log.setdefault(a.delivery_id, []).append(
                AttemptRecord(a.number, a.started_at, a.duration_ms, a.status_code, a.error))
    records = [DeliveryRecord(d.id, d.subscriber_id, d.event_id, kind.value, d.state.value, d.attempts,
                              d.next_attempt_at, d.last_status, d.last_error, d.created_at, d.delivered_at,
                              log.get(d.id, [])) for d, kind in rows]
    return records, total


# -- the dispatcher's steps ----------------------------------------------------------------

_ENQUEUE_SQL = text("""
WITH subs AS (
    SELECT id, project_id, event_kinds, watermark_event_id FROM webhook_subscribers
    WHERE active ORDER BY id FOR UPDATE SKIP LOCKED
), enqueued AS (
    INSERT INTO webhook_deliveries (subscriber_id, event_id)
    SELECT s.id, e.id FROM subs s
    JOIN events e ON e.project_id = s.project_id AND e.id > s.watermark_event_id
    WHERE (cardinality(s.event_kinds) = 0 OR e.kind::text = ANY(s.event_kinds))
      AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.subscriber_id = s.id AND d.event_id = e.id)
    ON CONFLICT (subscriber_id, event_id) DO NOTHING
    RETURNING 1
), moved AS (
    UPDATE webhook_subscribers w
    SET watermark_event_id = coalesce((SELECT max(e.id) FROM events e
                                       WHERE e.project_id = s.project_id AND e.id > s.watermark_event_id
                                         AND e.created_at < now() - make_interval(secs => :settle_s)),
                                      s.watermark_event_id)
    FROM subs s WHERE w.id = s.id
    RETURNING 1
)
SELECT (SELECT count(*) FROM enqueued) AS enqueued, (SELECT count(*) FROM moved) AS subscribers
""")

_CLAIM_SQL = text("""
UPDATE webhook_deliveries d SET next_attempt_at = now() + make_interval(secs => :lease_s)
FROM (
    SELECT picked.id FROM webhook_subscribers s
    CROSS JOIN LATERAL (
        SELECT x.id FROM webhook_deliveries x
        WHERE x.subscriber_id = s.id AND x.state = 'pending' AND x.next_attempt_at <= now()
        ORDER BY x.event_id LIMIT :per_subscriber FOR UPDATE SKIP LOCKED
    ) picked
    WHERE s.active
) due
WHERE d.id = due.id
RETURNING d.id, d.subscriber_id, d.event_id, d.attempts
""")


def enqueue_events(session: Session, *, settle: timedelta = timedelta(minutes=5)) -> int:
    """Create the missing deliveries of every active subscriber; returns how many were created."""
    row = session.execute(_ENQUEUE_SQL, {"settle_s": settle.total_seconds()}).one()
    return int(row.enqueued)


def claim_due(session: Session, *, per_subscriber: int = 20, lease: timedelta = timedelta(seconds=120)) -> list[DeliveryJob]:
    """Lease up to `per_subscriber` due deliveries of each subscriber, oldest event first."""
    claimed = session.execute(_CLAIM_SQL, {"lease_s": lease.total_seconds(), "per_subscriber": per_subscriber}).all()
    if not claimed:
        return []
    subs = {s.id: s for s in session.scalars(
        select(WebhookSubscriber).where(WebhookSubscriber.id.in_({c.subscriber_id for c in claimed})))}
    events = {e["id"]: e for e in describe_events(session, [c.event_id for c in claimed])}
    jobs = []
    for c in sorted(claimed, key=lambda c: (c.subscriber_id, c.event_id)):
        event = events[c.event_id]
        body = json.dumps({"delivery": c.id, "event": event}, sort_keys=True, separators=(",", ":")).encode()
        sub = subs[c.subscriber_id]
        jobs.append(DeliveryJob(c.id, sub.id, sub.url, sub.secret, c.attempts + 1, event["kind"], body))
    return jobs


def describe_events(session: Session, ids: list[int]) -> list[dict[str, Any]]:
    """Events as webhook payloads (and API records): kind, project, the version's reference, actor, payload."""
    rows = session.execute(text("""
        SELECT e.id, e.kind::text AS kind, p.code AS project, e.version_id, e.actor, e.payload, e.created_at,
               CASE WHEN v.id IS NOT NULL THEN p.code || '/' || a.name || '@' || v.number END AS version
        FROM events e JOIN projects p ON p.id = e.project_id
        LEFT JOIN versions v ON v.id = e.version_id LEFT JOIN assets a ON a.id = v.asset_id
        WHERE e.id = ANY(:ids) ORDER BY e.id"""), {"ids": list(ids)})
    return [{"id": r.id, "kind": r.kind, "project": r.project, "version": r.version, "version_id": r.version_id,
             "actor": r.actor, "payload": r.payload, "created_at": r.created_at.isoformat()} for r in rows]


def record_attempt(session: Session, job: DeliveryJob, outcome: AttemptOutcome, policy: RetryPolicy) -> str:
    """Log one attempt and move the delivery on: delivered, retried later, or failed. Returns the new state."""
    delivery = session.get(WebhookDelivery, job.delivery_id, with_for_update=True)
    if delivery is None or delivery.state != DeliveryState.pending:
        return delivery.state.value if delivery else "gone"
    session.add(WebhookAttempt(delivery_id=delivery.id, number=delivery.attempts + 1, started_at=outcome.started_at,
                               duration_ms=outcome.duration_ms, status_code=outcome.status_code,
                               error=outcome.error))
    delivery.attempts += 1
    delivery.last_status = outcome.status_code
    delivery.last_error = outcome.error
    if outcome.ok:
        delivery.state = DeliveryState.delivered
        delivery.delivered_at = _now()
    elif delivery.attempts >= policy.max_attempts:
        delivery.state = DeliveryState.failed
    else:
        delivery.next_attempt_at = _now() + timedelta(seconds=policy.delay(delivery.attempts))
    session.flush()
    return delivery.state.value


def release(session: Session, delivery_ids: list[int], delay: timedelta) -> None:
    """Give back claimed deliveries that were not tried (their subscriber just failed): no attempt is counted."""
    if delivery_ids:
        session.execute(update(WebhookDelivery).where(WebhookDelivery.id.in_(delivery_ids),
                                                      WebhookDelivery.state == DeliveryState.pending)
                        .values(next_attempt_at=_now() + delay))
