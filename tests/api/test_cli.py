"""`backlot token ...` and `backlot serve`: the commands that hand out access and run the server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.api.conftest import free_port
from tests.api.test_webhooks import Receiver


@pytest.fixture
def cli(run):
    """The shared CLI runner, with a project `film`."""
    run("project", "create", "film")
    return run


def test_token_create_list_revoke(cli):
    made = json.loads(cli("token", "create", "--project", "film", "--role", "supervisor", "--expires", "30d",
                          "--name", "dana", "--json").stdout)
    assert made["token"].startswith("blt_") and made["role"] == "supervisor" and made["expires_at"]
    plain = cli("token", "create", "--project", "film", "--role", "viewer")
    secret = plain.stdout.strip()
    assert secret.startswith("blt_") and "not shown again" in plain.stderr
    listed = json.loads(cli("token", "list", "--json").stdout)
    assert [(t["name"], t["role"], t["state"]) for t in listed] == [("dana", "supervisor", "active"),
                                                                   ("tester", "viewer", "active")]
    assert all("token" not in t and secret not in json.dumps(t) for t in listed)  # secrets are never shown again
    cli("token", "revoke", made["prefix"])
    cli("token", "revoke", str(made["id"]))  # twice: nothing changes
    states = {t["name"]: t["state"] for t in json.loads(cli("token", "list", "--project", "film", "--json").stdout)}
    assert states == {"dana": "revoked", "tester": "active"}


def test_token_bad_input_exits_2_and_writes_nothing(cli):
    assert "role 'boss' is invalid" in cli("token", "create", "--project", "film", "--role", "boss", code=2).stderr
    assert "no project 'nope'" in cli("token", "create", "--project", "nope", "--role", "viewer", code=2).stderr
    assert "in the past" in cli("token", "create", "--project", "film", "--role", "viewer", "--expires",
                                "2001-01-01", code=2).stderr
    assert "invalid" in cli("token", "create", "--project", "film", "--role", "viewer", "--expires", "soon",
                            code=2).stderr
    assert "no token" in cli("token", "revoke", "blt_missing", code=2).stderr
    assert json.loads(cli("token", "list", "--json").stdout) == []


@pytest.mark.slow
def test_backlot_serve_runs_the_api_and_delivers_webhooks(cli, db_url, env):
    """The real command in its own process: uvicorn on a free port, the API, the webhook thread."""
    admin = json.loads(cli("token", "create", "--project", "film", "--role", "admin", "--json").stdout)["token"]
    cli("shot", "create", "film", "sq010_sh0010", "--sequence", "sq010")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "backlot.services.cli", "serve", "--port", str(port)],
                              env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              start_new_session=True)
    receiver = Receiver().start()
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(base + "/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, server.stdout.read().decode()
            time.sleep(0.1)
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {admin}"}) as c:
            assert c.get("/api/token").json()["role"] == "admin"
            assert c.get("/api/projects/film/shots").json()["items"][0]["code"] == "sq010_sh0010"
            c.post("/api/projects/film/webhooks", json={"url": receiver.url, "event_kinds": ["version_created"]}
                   ).raise_for_status()
            published = c.post("/api/projects/film/versions", data={"asset": "refs/board", "kind": "reference"},
                               files=[("files", ("board.txt", b"x", "text/plain"))])
            assert published.status_code == 201
        deadline = time.monotonic() + 15
        while not receiver.received and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [r.headers["X-Backlot-Event"] for r in receiver.received] == ["version_created"]
    finally:
        receiver.stop()
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(15)
