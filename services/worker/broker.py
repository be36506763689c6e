"""Which broker: BROKER_URL (Redis or RabbitMQ across machines), else the database itself.

The embedded default is kombu's SQLAlchemy transport on Backlot's own PostgreSQL: nothing
more to install or start, and messages are as durable as the database. Its weakness — a
message taken by a worker that is then killed is not redelivered by the transport — does
not lose work here, because jobs live in PostgreSQL and the dispatcher re-sends any job
whose worker stopped beating.

kombu's transport only polls. Backlot's wakes the consumer instead: a message put sends a
PostgreSQL NOTIFY in the same transaction (delivered when it commits), which a LISTEN
connection in the consuming process turns into an immediate poll; an acknowledgement (a
freed prefetch slot) wakes it too, in process. Polling stays as the fallback: every
`FALLBACK_POLL_S` while the LISTEN connection is up, every `POLLING_INTERVAL` while it is not.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from json import dumps, loads
from queue import Empty
from time import monotonic

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport.sqlalchemy import Channel as SQLAlchemyChannel
from kombu.transport.sqlalchemy import Transport as SQLAlchemyTransport
from kombu.utils.encoding import bytes_to_str
from sqlalchemy import delete, insert, select, text
from sqlalchemy.exc import OperationalError

from backlot.config import Settings, load_settings
from backlot.db.engine import listen_connector, resolve_url
from backlot.services.worker.backoff import Backoff, embedded_database_gone, listen_until

log = logging.getLogger("backlot.broker")
POLLING_INTERVAL = 0.1  # without a LISTEN connection (as before it existed)
FALLBACK_POLL_S = float(os.environ.get("BACKLOT_BROKER_POLL_S", 1.0))  # with one: only a safety net
NOTIFY_CHANNEL = "backlot_broker"
EX_UNAVAILABLE = 69  # sysexits.h: a service the worker needs is gone


class PostgresChannel(SQLAlchemyChannel):
    """kombu's channel, with a NOTIFY in each put's transaction and a wake-up on each ack; a
    get is one statement (kombu's takes three), and SKIP LOCKED lets workers poll side by side."""

    def _queue_id(self, queue) -> int:
        ids = self.__dict__.setdefault("_queue_ids", {})
        if queue not in ids:
            ids[queue] = self._get_or_create(queue).id  # queue rows are never deleted
        return ids[queue]

    def _put(self, queue, payload, **kwargs):
        table = self.message_cls.__table__
        try:
            self.session.execute(insert(table).values(payload=dumps(payload), queue_id=self._queue_id(queue),
                                                      visible=True, version=1))
            self.session.execute(text("SELECT pg_notify(:channel, :queue)"),
                                 {"channel": NOTIFY_CHANNEL, "queue": str(queue)})
            self.session.commit()
        except OperationalError:
            self.session.rollback()  # the publish fails (and can be retried): nothing was stored
            raise

    def _get(self, queue):
        """Take the oldest message: deleted as it is taken (kombu's marks it invisible and keeps
        it forever). Nothing redelivers a taken message here anyway: a job whose worker is lost
        is sent again by the dispatcher, from the jobs table."""
        table = self.message_cls.__table__
        waiting = (table.c.queue_id == self._queue_id(queue)) & (table.c.visible != False)  # noqa: E712
        oldest = (select(table.c.id).where(waiting)
                  .order_by(table.c.timestamp, table.c.id).limit(1).with_for_update(skip_locked=True)
                  .scalar_subquery())
        try:
            payload = self.session.execute(
                delete(table).where(table.c.id == oldest).returning(table.c.payload)).scalar()
            self.session.commit()
        except OperationalError:
            self.session.rollback()
            raise
        if payload is None:
            raise Empty()
        return loads(bytes_to_str(payload))

    def basic_ack(self, delivery_tag, multiple=False):
        super().basic_ack(delivery_tag, multiple=multiple)
        self._wake()  # prefetch 1: the consumer may take the next message now

    def basic_reject(self, delivery_tag, requeue=False):
        super().basic_reject(delivery_tag, requeue=requeue)
        self._wake()

    def _wake(self) -> None:
        wake = getattr(self.connection, "wake", None)
        if wake is not None:
            wake()


class PostgresTransport(SQLAlchemyTransport):
    """kombu's SQLAlchemy transport, woken by LISTEN/NOTIFY and by acks instead of sleeping
    out a polling interval (which cannot be passed as an option: the transport hands all
    its options to create_engine)."""

    Channel = PostgresChannel
    polling_interval = POLLING_INTERVAL
    keep_trying = False  # a worker sets it: wait out a database outage instead of failing
    gone: str | None = None  # why the worker stopped for good, if it did

    def establish_connection(self):
        """Only claim a connection that exists: kombu's engine connects lazily, so without this
        a stopped database was "connected" and lost several times a second."""
        wait_for_database(self._listen_connector(), forever=self.keep_trying)
        return super().establish_connection()

    def __init__(self, client, **kwargs):
        super().__init__(client, **kwargs)
        self._woken = threading.Event()
        self._listening = threading.Event()  # the LISTEN connection is up
        self._closed = threading.Event()
        self._listener: threading.Thread | None = None

    def wake(self) -> None:
        self._woken.set()

    def drain_events(self, connection, timeout=None):
        """kombu's loop, with its sleep replaced by a wait that a NOTIFY or an ack ends."""
        self._start_listener()
        started = monotonic()
        while True:
            self._woken.clear()  # before polling: a wake-up during the poll is not lost
            try:
                self.cycle.get(self._deliver, timeout=timeout)
                return
            except Empty:
                pass
            left = None if timeout is None else timeout - (monotonic() - started)
            if left is not None and left <= 0:
                raise socket.timeout()
            interval = FALLBACK_POLL_S if self._listening.is_set() else self.polling_interval
            self._woken.wait(interval if left is None else min(interval, left))

    def close_connection(self, connection):
        self._closed.set()
        self._woken.set()
        return super().close_connection(connection)

    # -- the LISTEN connection (only in a process that consumes) ------------------------

    def _start_listener(self) -> None:
        if self._listener is not None and self._listener.is_alive():
            return
        connect = self._listen_connector()
        if connect is None:
            return
        self._listener = threading.Thread(target=self._listen, args=(connect,), name="backlot-broker-listen",
                                          daemon=True)
        self._listener.start()

    def _listen_connector(self):
        return listen_connector(self.client.hostname)  # None for another driver: plain polling

    def _listen(self, connect) -> None:
        def up() -> None:
            self._listening.set()
            self._woken.set()  # anything put while we were not listening: poll now

        listen_until(self._closed, connect, NOTIFY_CHANNEL, self._woken.set, what="broker", on_up=up,
                     on_down=self._listening.clear)


def wait_for_database(connect, *, forever: bool, backoff: Backoff | None = None) -> None:
    """Return once `connect()` gives a connection that answers. Outages are logged once when
    they start and once when they end; retries back off exponentially with jitter. Not
    `forever`: raise the error after the first try (kombu's own retry policy applies). An
    embedded database whose folder is gone will not come back: that ends the process."""
    if connect is None:
        return
    backoff = backoff or Backoff()
    down_since: float | None = None
    while True:
        try:
            with connect() as conn:
                conn.execute("SELECT 1")
        except Exception as exc:  # noqa: BLE001 - psycopg's errors: the server is down or unreachable
            if not forever:
                raise OperationalError("SELECT 1", None, exc) from exc
            if gone := embedded_database_gone():
                log.critical(gone)
                PostgresTransport.gone = gone  # Celery's exit code is 0 whatever we raise: the command reads this
                raise SystemExit(EX_UNAVAILABLE) from None
            if down_since is None:
                down_since = monotonic()
                log.error("database unreachable, retrying with backoff (up to %.0fs apart): %s",
                          backoff.cap, str(exc).strip().splitlines()[0])
            _sleep_unless_stopped(backoff.next_delay())
            continue
        if down_since is not None:
            log.warning("database reachable again after %.0fs", monotonic() - down_since)
        return


def _sleep_unless_stopped(seconds: float) -> None:
    """Sleep in short slices, leaving at once when the worker is asked to stop (SIGTERM, SIGINT):
    a worker waiting out an outage must still stop when told to."""
    from celery.worker.state import maybe_shutdown

    deadline = monotonic() + seconds
    while (left := deadline - monotonic()) > 0:
        maybe_shutdown()  # raises WorkerShutdown / WorkerTerminate once a stop was asked for
        time.sleep(min(left, 0.25))
    maybe_shutdown()


TRANSPORT_ALIASES.setdefault("backlotpg", "backlot.services.worker.broker:PostgresTransport")


def broker_url(settings: Settings | None = None) -> str:
    """BROKER_URL, else the database of `settings` (default: the environment's)."""
    if url := os.environ.get("BROKER_URL"):
        return url
    return "backlotpg+" + resolve_url(settings or load_settings())


def is_embedded(url: str) -> bool:
    return url.startswith("backlotpg+")
