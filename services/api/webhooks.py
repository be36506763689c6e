"""The webhook dispatcher: reads the event table, POSTs signed deliveries, retries with back-off.

One pass: enqueue new events (one transaction), lease due deliveries (one transaction),
then send them with one worker per subscriber (a thread pool), each subscriber's
deliveries in event order. Every attempt is recorded in its own short transaction. When a
subscriber fails, the rest of its batch is given back untried until its next attempt is
due, so a dead subscriber costs at most one request timeout per pass and never holds up
the others, which run in parallel.

`backlot serve` runs passes in a background thread; `Dispatcher.run_once()` runs one pass
(the tests call it directly).
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

from sqlalchemy.engine import Engine

from backlot.access import webhooks
from backlot.access.webhooks import AttemptOutcome, DeliveryJob, sign_payload
from backlot.db.engine import session_scope
from backlot.services.api.config import WebhookSettings

log = logging.getLogger("backlot.webhooks")
USER_AGENT = "Backlot-Webhooks/1"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not a delivery: it counts as a failure (and is never followed)."""

    def redirect_request(self, *args, **kwargs):
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def post(job: DeliveryJob, timeout_s: float) -> AttemptOutcome:
    """Send one delivery; any answer but 2xx, and any network error, is a failed attempt."""
    stamp = int(time.time())
    request = urllib.request.Request(job.url, data=job.body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": USER_AGENT, "X-Backlot-Event": job.event_kind,
        "X-Backlot-Delivery": str(job.delivery_id), webhooks.TIMESTAMP_HEADER: str(stamp),
        webhooks.SIGNATURE_HEADER: sign_payload(job.secret, stamp, job.body)})
    started = datetime.now(timezone.utc)
    clock = time.perf_counter()
    status, error = None, None
    try:
        with _opener.open(request, timeout=timeout_s) as response:
            status = response.status
            response.read(65536)
    except urllib.error.HTTPError as exc:
        status, error = exc.code, f"HTTP {exc.code} {exc.reason}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        error = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
    elapsed = int((time.perf_counter() - clock) * 1000)
    return AttemptOutcome(started, elapsed, status, error[:1000] if error else None)


class Dispatcher:
    def __init__(self, engine: Engine, settings: WebhookSettings):
        self.engine = engine
        self.settings = settings
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> dict[str, int]:
        """One pass: enqueue, lease, send, record. Returns counts of what happened."""
        with session_scope(self.engine) as s:
            enqueued = webhooks.enqueue_events(s, settle=self.settings.settle)
        with session_scope(self.engine) as s:
            jobs = webhooks.claim_due(s, per_subscriber=self.settings.per_subscriber,
                                      lease=timedelta(seconds=self.settings.timeout_s * self.settings.per_subscriber + 60))
        by_subscriber: dict[int, list[DeliveryJob]] = defaultdict(list)
        for job in jobs:
            by_subscriber[job.subscriber_id].append(job)
        counts = {"enqueued": enqueued, "claimed": len(jobs), "delivered": 0, "retrying": 0, "failed": 0,
                  "released": 0}
        if by_subscriber:
            with ThreadPoolExecutor(max_workers=min(self.settings.workers, len(by_subscriber))) as pool:
                for result in pool.map(self._serve_subscriber, by_subscriber.values()):
                    for key, value in result.items():
                        counts[key] += value
        return counts

    def _serve_subscriber(self, jobs: list[DeliveryJob]) -> dict[str, int]:
        counts = {"delivered": 0, "retrying": 0, "failed": 0, "released": 0}
        for index, job in enumerate(jobs):
            outcome = post(job, self.settings.timeout_s)
            with session_scope(self.engine) as s:
                state = webhooks.record_attempt(s, job, outcome, self.settings.retry)
            counts["delivered" if state == "delivered" else "failed" if state == "failed" else "retrying"] += 1
            if not outcome.ok:
                rest = [j.delivery_id for j in jobs[index + 1:]]
                if rest:
                    with session_scope(self.engine) as s:
                        webhooks.release(s, rest, timedelta(seconds=self.settings.retry.delay(job.attempt)))
                    counts["released"] += len(rest)
                log.warning("webhook %s to %s failed: %s", job.delivery_id, job.url,
                            outcome.error or f"HTTP {outcome.status_code}")
                break
        return counts

    # -- background loop (backlot serve) -----------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="backlot-webhooks", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # a pass that fails (database restarting, ...) is retried on the next tick
                log.exception("webhook pass failed")
            self._stop.wait(self.settings.poll_interval_s)
