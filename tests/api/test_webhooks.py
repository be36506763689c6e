"""Webhooks against real HTTP receivers on 127.0.0.1: signed deliveries from the event table, retries
with back-off, a delivery log, and a dead or hanging subscriber that never holds up the others.

These tests have their own database (a dispatcher pass serves every subscriber it finds) and their
own API server on it.
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Iterator

import pytest
from sqlalchemy import text

from backlot.access import verify_signature
from backlot.access.webhooks import RetryPolicy
from backlot.services.api import ApiSettings, create_app
from backlot.services.api.config import WebhookSettings
from backlot.services.api.webhooks import Dispatcher
from tests.api.conftest import LiveServer, build_production, engine_for, free_port, start_server
from tests.conftest import create_database, drop_database


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A real HTTP server that answers webhook POSTs: `script` lists the status codes to answer in turn
    (then 200); `hang` makes it accept and never answer."""

    script: list[int] = field(default_factory=list)
    hang: bool = False
    received: list[Received] = field(default_factory=list)

    def start(self) -> "Receiver":
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                owner.received.append(Received(dict(self.headers), body, time.monotonic()))
                if owner.hang:
                    time.sleep(30)
                    return
                status = owner.script.pop(0) if owner.script else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def dead_url() -> str:
    """A loopback port with nobody listening: connection refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/hook"


@pytest.fixture(scope="module")
def hooks(template_url, tmp_path_factory) -> Iterator[LiveServer]:
    from backlot.config import Settings

    url = create_database(template_url, "hooks")
    home = tmp_path_factory.mktemp("hooks-home")
    settings = ApiSettings(backlot=Settings(home=home, database_url=url, store_url=str(home / "store"), user="hooks"),
                           webhooks=WebhookSettings(enabled=False))
    app = create_app(settings)
    server, thread = start_server(app, free_port())
    yield LiveServer(f"http://127.0.0.1:{server.config.port}", settings, app)
    server.should_exit = True
    thread.join(10)
    drop_database(url)


@pytest.fixture(autouse=True)
def quiet(hooks) -> None:
    """Each test starts with no active subscriber: a pass then serves only the test's own."""
    with engine_for(hooks.settings).begin() as conn:
        conn.execute(text("UPDATE webhook_subscribers SET active = false"))


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    made: list[Receiver] = []
    yield made
    for r in made:
        r.stop()


def receiver(receivers, **kwargs) -> Receiver:
    r = Receiver(**kwargs).start()
    receivers.append(r)
    return r


def dispatcher(live: LiveServer, **kwargs) -> Dispatcher:
    retry = kwargs.pop("retry", RetryPolicy(max_attempts=4, base_delay_s=0.3, max_delay_s=5))
    return Dispatcher(engine_for(live.settings), WebhookSettings(enabled=False, timeout_s=kwargs.pop("timeout_s", 2),
                                                                 retry=retry, **kwargs))


def subscribe(c, code: str, url: str, kinds: list[str] | None = None) -> dict:
    response = c.post(f"/api/projects/{code}/webhooks", json={"url": url, "event_kinds": kinds or []})
    assert response.status_code == 201, response.text
    return response.json()


def test_signed_deliveries_of_the_projects_events(hooks, receivers, tmp_path):
    prod = build_production(hooks.settings, tmp_path / "a")
    other = build_production(hooks.settings, tmp_path / "b")
    live = receiver(receivers)
    with hooks.client(prod.tokens["admin"]) as c:
        sub = subscribe(c, prod.code, live.url, ["status_changed", "version_created"])
        v = prod.vid("shots/sq010_sh0030/main@1")
        c.post(f"/api/projects/{prod.code}/versions/{v}/approve", json={"note": "good"}).raise_for_status()
        c.post(f"/api/projects/{prod.code}/versions/{v}/notes", json={"body": "a note is not subscribed"})
        c.post(f"/api/projects/{prod.code}/versions", data={"asset": "refs/board", "kind": "reference"},
               files=[("files", ("board.txt", b"board", "text/plain"))]).raise_for_status()
    with hooks.client(other.tokens["admin"]) as c:  # another project's events never reach this subscriber
        c.post(f"/api/projects/{other.code}/versions/{other.vid('adapters/mara@1')}/approve", json={})

    counts = dispatcher(hooks).run_once()
    assert counts["delivered"] == 2 and counts["enqueued"] == 2
    kinds = [r.headers["X-Backlot-Event"] for r in live.received]
    assert kinds == ["status_changed", "version_created"]
    for r in live.received:
        assert verify_signature(sub["secret"], r.headers["X-Backlot-Timestamp"], r.headers["X-Backlot-Signature"],
                                r.body)
        assert not verify_signature("whsec_wrong", r.headers["X-Backlot-Timestamp"],
                                    r.headers["X-Backlot-Signature"], r.body)
        assert r.json["event"]["project"] == prod.code
    approved = live.received[0].json["event"]
    assert approved["version"] == f"{prod.code}/shots/sq010_sh0030/main@1" and approved["payload"]["status"] == "approved"
    assert live.received[1].json["event"]["version"] == f"{prod.code}/refs/board@1"

    assert dispatcher(hooks).run_once()["claimed"] == 0  # delivered once, not again
    with hooks.client(prod.tokens["admin"]) as c:
        log = c.get(f"/api/projects/{prod.code}/webhooks/{sub['id']}/deliveries").json()
    assert [d["state"] for d in log["items"]] == ["delivered", "delivered"]
    assert all(d["log"][0]["status_code"] == 200 for d in log["items"])


def test_retries_with_back_off_then_delivered(hooks, receivers, tmp_path):
    prod = build_production(hooks.settings, tmp_path / "a")
    flaky = receiver(receivers, script=[500, 503])
    with hooks.client(prod.tokens["admin"]) as c:
        sub = subscribe(c, prod.code, flaky.url, ["status_changed"])
        c.post(f"/api/projects/{prod.code}/versions/{prod.vid('adapters/mara@1')}/reject",
               json={"note": "soft"}).raise_for_status()
    d = dispatcher(hooks)
    deadline = time.monotonic() + 15
    while len(flaky.received) < 3 and time.monotonic() < deadline:
        d.run_once()
        time.sleep(0.05)
    assert len(flaky.received) == 3
    gaps = [b.at - a.at for a, b in zip(flaky.received, flaky.received[1:])]
    assert gaps[0] >= 0.3 and gaps[1] >= 0.6, gaps  # 0.3 s, then twice that
    ids = {r.headers["X-Backlot-Delivery"] for r in flaky.received}
    assert len(ids) == 1  # the same delivery, retried
    with hooks.client(prod.tokens["admin"]) as c:
        log = c.get(f"/api/projects/{prod.code}/webhooks/{sub['id']}/deliveries").json()["items"]
    assert log[0]["state"] == "delivered" and log[0]["attempts"] == 3
    assert [a["status_code"] for a in log[0]["log"]] == [500, 503, 200]
    assert "HTTP 500" in log[0]["log"][0]["error"]


def test_a_dead_subscriber_fails_after_its_attempts_and_blocks_no_one(hooks, receivers, tmp_path):
    prod = build_production(hooks.settings, tmp_path / "a")
    live = receiver(receivers)
    with hooks.client(prod.tokens["admin"]) as c:
        dead = subscribe(c, prod.code, dead_url())
        subscribe(c, prod.code, live.url)
        for shot in ("sq010_sh0010", "sq010_sh0020", "sq010_sh0040"):
            v = prod.vid(f"shots/{shot}/main@1")
            c.post(f"/api/projects/{prod.code}/versions/{v}/approve", json={}).raise_for_status()
    d = dispatcher(hooks, retry=RetryPolicy(max_attempts=2, base_delay_s=0.2, max_delay_s=1))
    first = d.run_once()
    assert len(live.received) == 3 and first["delivered"] == 3
    # The dead one: one attempt failed, the rest of its batch given back untried until its back-off is over.
    assert first["retrying"] == 1 and first["released"] == 2
    time.sleep(0.3)
    d.run_once()
    time.sleep(0.3)
    d.run_once()
    with hooks.client(prod.tokens["admin"]) as c:
        log = c.get(f"/api/projects/{prod.code}/webhooks/{dead['id']}/deliveries").json()["items"]
    states = sorted(x["state"] for x in log)
    assert "failed" in states and all(x["attempts"] <= 2 for x in log)
    failed = next(x for x in log if x["state"] == "failed")
    assert failed["attempts"] == 2 and "Connection refused" in failed["last_error"]
    assert len(live.received) == 3  # the live subscriber got everything once, on the first pass


def test_a_hanging_subscriber_does_not_delay_the_others(hooks, receivers, tmp_path):
    prod = build_production(hooks.settings, tmp_path / "a")
    stuck = receiver(receivers, hang=True)
    live = receiver(receivers)
    with hooks.client(prod.tokens["admin"]) as c:
        subscribe(c, prod.code, stuck.url, ["status_changed"])
        subscribe(c, prod.code, live.url, ["status_changed"])
        c.post(f"/api/projects/{prod.code}/versions/{prod.vid('shots/sq010_sh0010/main@2')}/approve", json={})
    started = time.monotonic()
    counts = dispatcher(hooks, timeout_s=2).run_once()
    took = time.monotonic() - started
    assert len(live.received) == 1 and live.received[0].at - started < 1.0  # not after the stuck one
    assert counts["delivered"] == 1 and counts["retrying"] == 1
    assert 2 <= took < 6  # the pass itself waits for the timeout, once
    with hooks.client(prod.tokens["admin"]) as c:
        subs = c.get(f"/api/projects/{prod.code}/webhooks").json()["items"]
        stuck_log = c.get(f"/api/projects/{prod.code}/webhooks/{subs[0]['id']}/deliveries").json()["items"]
    assert stuck_log[0]["state"] == "pending" and "timed out" in stuck_log[0]["last_error"]


def test_removed_subscribers_get_nothing_and_two_dispatchers_deliver_once(hooks, receivers, tmp_path):
    prod = build_production(hooks.settings, tmp_path / "a")
    live, gone = receiver(receivers), receiver(receivers)
    with hooks.client(prod.tokens["admin"]) as c:
        subscribe(c, prod.code, live.url, ["status_changed"])
        removed = subscribe(c, prod.code, gone.url, ["status_changed"])
        assert c.delete(f"/api/projects/{prod.code}/webhooks/{removed['id']}").json()["active"] is False
        for shot in ("sq010_sh0010", "sq010_sh0020", "sq010_sh0030", "sq010_sh0040", "sq020_sh0010"):
            v = prod.vid(f"shots/{shot}/main@1")
            c.post(f"/api/projects/{prod.code}/versions/{v}/approve", json={}).raise_for_status()
    passes = [dispatcher(hooks), dispatcher(hooks)]
    threads = [threading.Thread(target=d.run_once) for d in passes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for d in passes:
        d.run_once()
    assert gone.received == []
    delivered = [r.headers["X-Backlot-Delivery"] for r in live.received]
    assert len(delivered) == 5 and len(set(delivered)) == 5


def test_events_from_late_commits_are_not_skipped(hooks, receivers, tmp_path):
    """An event whose id was taken before a later one's but committed after a pass: still delivered."""
    from backlot.db.engine import session_scope
    import backlot

    prod = build_production(hooks.settings, tmp_path / "a")
    live = receiver(receivers)
    with hooks.client(prod.tokens["admin"]) as c:
        subscribe(c, prod.code, live.url, ["status_changed"])
    engine = engine_for(hooks.settings)
    slow = engine.connect()
    slow_tx = slow.begin()
    from sqlalchemy.orm import Session

    slow_session = Session(bind=slow)
    backlot.set_status(slow_session, prod.vid("shots/sq010_sh0010/main@2"), "approved", actor="slow")  # id taken
    with session_scope(engine) as s:
        backlot.set_status(s, prod.vid("shots/sq010_sh0020/main@1"), "approved", actor="fast")
    d = dispatcher(hooks, settle=timedelta(minutes=5))
    d.run_once()
    assert [r.json["event"]["actor"] for r in live.received] == ["fast"]
    slow_session.flush()
    slow_tx.commit()
    slow.close()
    d.run_once()
    assert [r.json["event"]["actor"] for r in live.received] == ["fast", "slow"]
    with engine.connect() as conn:
        watermark = conn.execute(text("SELECT max(watermark_event_id) FROM webhook_subscribers")).scalar()
    assert watermark is not None
