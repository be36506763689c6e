"""The embedded broker wakes its consumer (LISTEN/NOTIFY on a put, in process on an ack)
instead of sleeping out a polling interval: with polling slowed to 30 s, messages still
arrive at once."""

from __future__ import annotations

import threading
import time

import pytest
from kombu import Connection, Exchange, Queue


@pytest.fixture
def slow_polling(monkeypatch):
    from backlot.services.worker import broker

    monkeypatch.setattr(broker, "FALLBACK_POLL_S", 30.0)
    monkeypatch.setattr(broker.PostgresTransport, "polling_interval", 30.0)


def connection(db_url: str) -> Connection:
    from backlot.services.worker import broker  # noqa: F401 - registers the backlotpg transport

    return Connection("backlotpg+" + db_url)


def publish_later(db_url: str, queue: Queue, bodies, delay: float) -> threading.Thread:
    def publish() -> None:
        time.sleep(delay)
        with connection(db_url) as conn:
            producer = conn.Producer()
            for body in bodies:
                producer.publish(body, exchange=queue.exchange, routing_key=queue.routing_key, declare=[queue])

    thread = threading.Thread(target=publish)
    thread.start()
    return thread


def test_a_message_put_by_another_process_wakes_the_consumer(db_url, slow_polling):
    queue = Queue("wake", Exchange("wake"), routing_key="wake")
    got: list[tuple[float, str]] = []
    def on_message(body, message) -> None:
        got.append((time.monotonic(), body))
        message.ack()

    with connection(db_url) as conn, conn.Consumer(queue, callbacks=[on_message]):
        with pytest.raises(TimeoutError):
            conn.drain_events(timeout=0.3)  # nothing yet; starts the LISTEN connection
        assert conn.transport._listening.wait(10), "LISTEN connection is up"
        sent = time.monotonic()
        publish_later(db_url, queue, ["hello"], 0.2).join()
        conn.drain_events(timeout=10)
    assert [body for _, body in got] == ["hello"]
    assert got[0][0] - sent < 2.0, "woken by NOTIFY, not by the 30 s poll"


def test_an_ack_lets_the_consumer_take_the_next_message_at_once(db_url, slow_polling):
    queue = Queue("acks", Exchange("acks"), routing_key="acks")
    publish_later(db_url, queue, ["one", "two"], 0).join()
    got: list = []
    keep = [lambda body, message: got.append((body, message))]  # not acked here
    with connection(db_url) as conn, conn.Consumer(queue, prefetch_count=1, callbacks=keep):
        conn.drain_events(timeout=10)
        assert [body for body, _ in got] == ["one"]
        acked = []

        def ack_later() -> None:
            time.sleep(0.3)
            acked.append(time.monotonic())
            got[0][1].ack()

        thread = threading.Thread(target=ack_later)
        thread.start()
        conn.drain_events(timeout=10)  # prefetch 1: "two" only after "one" is acked
        arrived = time.monotonic()
        thread.join()
    assert [body for body, _ in got] == ["one", "two"]
    assert arrived - acked[0] < 2.0, "woken by the ack, not by the 30 s poll"


def test_without_listen_it_still_polls(db_url, monkeypatch):
    from backlot.services.worker import broker

    monkeypatch.setattr(broker.PostgresTransport, "_listen_connector", lambda self: None)
    queue = Queue("poll", Exchange("poll"), routing_key="poll")
    got: list = []
    with connection(db_url) as conn, conn.Consumer(queue, callbacks=[lambda body, m: (got.append(body), m.ack())]):
        publish_later(db_url, queue, ["polled"], 0.3)
        conn.drain_events(timeout=10)
    assert got == ["polled"]
