"""`backlot worker status` against a real worker: what it reaches, what it loaded, the job it runs,
and exit 1 when something needed is down (a broker that does not answer, no worker when one is
expected). Device: this machine has no GPU, so only the CPU answer is exercised here."""

from __future__ import annotations

import json

import pytest

import backlot
from backlot.db import migrate
from tests.worker.conftest import free_port, wait_until

pytestmark = pytest.mark.slow


def _status(run, *args, code=0) -> dict:
    return json.loads(run("worker", "status", "--json", *args, code=code).stdout)


def _worker(status: dict, parent: int) -> dict | None:
    return next((w for w in status["workers"] if w["parent_pid"] == parent), None)


def test_worker_status_reports_reach_models_and_jobs(studio, start_worker, run, monkeypatch):
    from backlot.services.worker.submit import submit_render

    monkeypatch.setenv("BACKLOT_WARM_MODEL", studio["base"])
    before = _status(run)
    assert before["ok"] and before["workers"] == []
    checks = before["checks"]
    assert checks["database"]["revision"] == migrate.head_revision() and checks["database"]["ok"]
    assert checks["broker"] == {"ok": True, "detail": "the database (no BROKER_URL)", "kind": "database"}
    assert checks["store"]["ok"] and checks["device"]["kind"] in ("cpu", "cuda")

    worker = start_worker()
    idle = wait_until(lambda: (w := _worker(_status(run), worker.process.pid)) and w["loaded"] and w)
    assert idle["loaded"] == [studio["base"]] and idle["warm"] == studio["base"] and idle["job"] is None

    with backlot.session() as s:
        job = submit_render(s, "film", "sh010", {"prompt": "a long shot", "steps": 20, "seed": 1},
                            base_model=studio["base"], frames=150, continuity=False)
    busy = wait_until(lambda: (w := _worker(_status(run), worker.process.pid)) and w["job"] and w)
    assert busy["job"]["id"] == job.id and busy["job"]["kind"] == "render_shot"
    assert busy["job"]["project"] == "film" and busy["job"]["worker"] == busy["name"]
    table = run("worker", "status").stdout
    assert f"{job.id} render_shot (film)" in table and studio["base"] in table

    worker.kill()  # SIGKILL: its job is left running, claimed by a process that is gone
    gone = _status(run, "--expect-workers", "1", code=1)
    assert gone["workers"] == [] and [j["id"] for j in gone["orphaned_jobs"]] == [job.id]
    assert not gone["checks"]["workers"]["ok"] and gone["checks"]["database"]["ok"]
    run("jobs", "cancel", job.id)


def test_worker_status_fails_when_the_broker_does_not_answer(db_url, run, monkeypatch):
    monkeypatch.setenv("BROKER_URL", f"redis://127.0.0.1:{free_port()}/0")
    status = _status(run, code=1)
    assert not status["ok"] and not status["checks"]["broker"]["ok"]
    assert status["checks"]["database"]["ok"] and status["checks"]["store"]["ok"]
    assert "DOWN" in run("worker", "status", code=1).stdout
