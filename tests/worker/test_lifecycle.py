"""A worker's life: it dies with the command that started it, waits out a database outage
quietly (backoff, one line per change, no busy loop), and stops when its embedded database
is gone for good. Real processes, a real PostgreSQL server stopped and started under them."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from sqlalchemy import text

import backlot
from backlot.db.embedded import EmbeddedPostgres
from tests.worker.conftest import cpu_seconds, group_pids, wait_until

PARENT = """
import sys, time
from pathlib import Path
from backlot.services.worker.process import start_worker_process
worker = start_worker_process(Path(sys.argv[1]))
print(worker.pid, flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by init) is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] != "Z"
    except OSError:
        return False


def _ready(log: Path) -> bool:
    return log.exists() and " ready." in log.read_text(errors="replace")


def test_a_worker_dies_with_the_command_that_started_it(db_url, tmp_path):
    log = tmp_path / "worker.log"
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(log)], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    worker = int(parent.stdout.readline())
    try:
        wait_until(lambda: _ready(log), timeout=120)
        assert len(group_pids(worker)) >= 2  # the worker and its pool process
        parent.kill()  # SIGKILL: no chance to stop the worker itself
        parent.wait(timeout=10)
        killed = time.monotonic()
        wait_until(lambda: not group_pids(worker), timeout=60)
        took = time.monotonic() - killed
    finally:
        for pid in group_pids(worker):
            os.kill(pid, signal.SIGKILL)
    print(f"worker and pool gone {took:.1f}s after their parent was killed")
    assert took < 30


@pytest.fixture
def pg_home():
    """A home for a server of the test's own, where the server's account can reach it (as root
    the server runs as another user, who cannot enter pytest's private temp folders)."""
    home = Path(tempfile.mkdtemp(prefix="backlot-test-life-"))
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def own_server(pg_home, tmp_path):
    """A PostgreSQL server of the test's own (so it can be stopped), migrated, given to the
    worker by DATABASE_URL: to the worker it is a studio's server, not its embedded one."""
    server = EmbeddedPostgres(pg_home)
    url = server.start()
    from backlot.db.engine import get_engine
    from backlot.db.migrate import upgrade

    upgrade(get_engine(backlot.config.Settings(tmp_path, url, str(tmp_path / "store"), "test"), check_schema=False))
    yield server, url
    server.stop()


def test_a_worker_waits_out_a_database_outage_quietly_and_comes_back(own_server, tmp_path):
    server, url = own_server
    log = tmp_path / "worker.log"
    env = {k: v for k, v in os.environ.items() if k not in ("BROKER_URL",)}
    env.update(DATABASE_URL=url, BACKLOT_HOME=str(tmp_path / "home"), BACKLOT_DISPATCH_EVERY_S="1")
    worker = subprocess.Popen([sys.executable, "-m", "backlot.services.cli", "worker", "--loglevel", "info"],
                              stdout=open(log, "ab"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        wait_until(lambda: _ready(log), timeout=120)
        server.stop()
        time.sleep(3)  # the loss is noticed, the first retries are made
        before, outage_log = cpu_seconds(group_pids(worker.pid)), len(log.read_text(errors="replace").splitlines())
        time.sleep(20)
        cpu = cpu_seconds(group_pids(worker.pid)) - before
        during = log.read_text(errors="replace").splitlines()[outage_log:]
        assert worker.poll() is None, "a server outage is waited out, not fatal"
        assert cpu < 0.05 * 20, f"an idle disconnected worker used {cpu:.2f}s of CPU in 20s"
        assert len([line for line in during if "/MainProcess]" in line]) <= 3, during  # no line per retry
        restarted = time.monotonic()
        assert server.start() == url  # the same port: what the worker holds still points at it
        lines = len(log.read_text(errors="replace").splitlines())
        wait_until(lambda: any("Connected to" in line for line in log.read_text(errors="replace").splitlines()[lines:]),
                   timeout=90)
        back = time.monotonic() - restarted
        whole = log.read_text(errors="replace")
        assert whole.count("database unreachable") == 1 and whole.count("database reachable again") == 1
        print(f"outage: {cpu / 20:.1%} CPU while disconnected; back {back:.1f}s after the server was")
        assert back < 60
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)


def test_a_worker_whose_embedded_database_is_gone_stops_with_one_message(pg_home, tmp_path):
    home = pg_home
    log = tmp_path / "worker.log"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BROKER_URL")}
    env.update(BACKLOT_HOME=str(home), BACKLOT_DISPATCH_EVERY_S="1")
    worker = subprocess.Popen([sys.executable, "-m", "backlot.services.cli", "worker", "--loglevel", "info"],
                              stdout=open(log, "ab"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        wait_until(lambda: _ready(log), timeout=120)
        EmbeddedPostgres(home).stop()
        subprocess.run(["rm", "-rf", str(home / "postgres" / "data")], check=True)
        code = worker.wait(timeout=90)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
    whole = log.read_text(errors="replace")
    assert code != 0
    assert whole.count("is gone (its folder was removed): the worker stops") == 1
    assert not (home / "postgres" / "data").exists(), "no empty database was made in its place"


def test_taken_messages_leave_the_broker_table(studio, start_worker):
    """kombu's transport kept every message it delivered; Backlot's deletes it as it is taken."""
    from backlot.services.worker.app import create_app

    app = create_app()
    for job_id in range(10**9, 10**9 + 20):  # no such jobs: the task claims nothing and returns
        app.send_task("backlot.run_job", args=[job_id], queue="gpu")
    with backlot.session() as s:
        assert s.execute(text("SELECT count(*) FROM kombu_message")).scalar() >= 20
    start_worker()

    def drained() -> bool:
        with backlot.session() as s:
            return s.execute(text("SELECT count(*) FROM kombu_message")).scalar() == 0

    wait_until(drained, timeout=120)


def test_a_running_job_beats_while_it_reports_no_progress(db_url, monkeypatch):
    """Fetching and loading a big model reports no progress: the job must still look alive."""
    from backlot import jobs
    from backlot.db.jobs import Job
    from backlot.services.worker import tasks

    monkeypatch.setattr(tasks, "STALE_AFTER", 2.0)  # beats every max(1 s, 2 s / 4)
    with backlot.session() as s:
        backlot.create_project(s, "film")
        job = jobs.request_job(s, "film", "render_shot", {"shot": "sh010"}, idempotency_key="beat-test")
        jobs.claim_job(s, job.id, jobs.worker_name(), stale_after=2.0)

    def heartbeat():
        with backlot.session() as s:
            return s.get(Job, job.id).heartbeat_at

    claimed = heartbeat()
    with tasks._heartbeat(job.id):
        time.sleep(3.5)  # silent work, as a model load is
        beaten = heartbeat()
    assert beaten > claimed
    with backlot.session() as s:  # a finished job is left alone by a late beat
        jobs.fail_attempt(s, job.id, "done testing", "", final=True)
    failed_at = heartbeat()
    with tasks._heartbeat(job.id):
        time.sleep(1.5)
    assert heartbeat() == failed_at


def test_an_outage_does_not_use_up_a_jobs_attempts(db_url):
    """The store unreachable for longer than a few retries (the soak's 30 s S3 outage failed a
    job after three quick attempts): outages are waited out; the job's own errors still count."""
    from backlot import jobs
    from backlot.db.jobs import Job
    from backlot.errors import InvalidInputError, StoreUnavailableError
    from backlot.services.worker.tasks import is_outage

    class EndpointConnectionError(Exception):  # the S3 client's, by module and name
        pass

    EndpointConnectionError.__module__ = "botocore.exceptions"
    try:
        raise RuntimeError("render failed") from EndpointConnectionError("Could not connect to the endpoint URL")
    except RuntimeError as wrapped:
        assert is_outage(wrapped)
    assert is_outage(StoreUnavailableError("down")) and is_outage(ConnectionRefusedError())
    assert not is_outage(InvalidInputError("bad prompt")) and not is_outage(ValueError("nan"))

    with backlot.session() as s:
        backlot.create_project(s, "film")
        job = jobs.request_job(s, "film", "render_shot", {"shot": "sh010"}, idempotency_key="outage-test")
    for _ in range(5):  # more outages than max_attempts
        with backlot.session() as s:
            assert jobs.claim_job(s, job.id, jobs.worker_name(), stale_after=60) is not None
            jobs.fail_attempt(s, job.id, "EndpointConnectionError: ...", "", final=False, outage=True)
    with backlot.session() as s:
        row = s.get(Job, job.id)
        assert (row.state.value, row.attempts) == ("queued", 0)
    for _ in range(3):  # the job's own failures still end it after max_attempts
        with backlot.session() as s:
            jobs.claim_job(s, job.id, jobs.worker_name(), stale_after=60)
            jobs.fail_attempt(s, job.id, "ValueError: nan", "", final=False)
    with backlot.session() as s:
        assert s.get(Job, job.id).state.value == "failed"


def test_a_worker_waiting_out_an_outage_still_stops_when_told(own_server, tmp_path):
    server, url = own_server
    log = tmp_path / "worker.log"
    env = {k: v for k, v in os.environ.items() if k not in ("BROKER_URL",)}
    env.update(DATABASE_URL=url, BACKLOT_HOME=str(tmp_path / "home"))
    worker = subprocess.Popen([sys.executable, "-m", "backlot.services.cli", "worker", "--loglevel", "info"],
                              stdout=open(log, "ab"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        wait_until(lambda: _ready(log), timeout=120)
        server.stop()
        wait_until(lambda: "database unreachable" in log.read_text(errors="replace"), timeout=60)
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)  # not stuck in the backoff loop
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
        server.start()
