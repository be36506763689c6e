"""Real worker processes and brokers: the embedded PostgreSQL transport, and a real redis-server."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

import backlot
from backlot import jobs
from tests.generation.conftest import make_art, tiny_folder  # noqa: F401 - shared fixture

FAST_DISPATCH = {"BACKLOT_DISPATCH_EVERY_S": "0.5", "BACKLOT_JOB_STALE_S": "4", "BACKLOT_JOB_REDISPATCH_S": "6"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def group_pids(pgid: int) -> list[int]:
    """The live (not zombie) processes of a process group."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                pids.append(int(entry.name))
    return pids


def cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system) the processes have used so far."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime + stime
    return ticks / os.sysconf("SC_CLK_TCK")


class Worker:
    """A `backlot worker` process in its own process group (so kill -9 takes its children too)."""

    def __init__(self, log: Path):
        self.log = log
        self.process: subprocess.Popen | None = None

    def start(self) -> "Worker":
        from backlot.services.worker.process import start_worker_process

        self.process = start_worker_process(self.log)  # bound to the test run: killed with it
        return self

    def kill(self, sig=signal.SIGKILL) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def fast_dispatch(monkeypatch):
    for key, value in FAST_DISPATCH.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def start_worker(db_url, fast_dispatch, tmp_path):
    started: list[Worker] = []

    def start() -> Worker:
        worker = Worker(tmp_path / f"worker{len(started)}.log").start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


class RedisServer:
    def __init__(self, folder: Path):
        self.port = free_port()
        self.folder = folder
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
             "--dir", str(self.folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def redis(tmp_path, monkeypatch):
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed (.ci/setup installs it)")
    server = RedisServer(tmp_path)
    server.start()
    monkeypatch.setenv("BROKER_URL", server.url)
    yield server
    server.stop()


@pytest.fixture
def studio(db_url, tiny_folder, tmp_path):  # noqa: F811
    """A committed project with the tiny model and a sequence of three short shots."""
    from backlot import generation as gen

    with backlot.session() as s:
        backlot.create_project(s, "film")
        base = gen.register_model(s, "film", "models/tiny", tiny_folder)
        art = backlot.publish_version(s, "film", "characters/mara", [make_art(tmp_path / "mara.png", 1)],
                                       kind="concept_art", status="approved")
        for code in ("sh010", "sh020", "sh030"):
            backlot.create_shot(s, "film", code, sequence="sq010", frames=2)
    return {"base": base.ref, "art": art.ref}


def wait_for_jobs(ids, timeout=180, states=("done", "failed", "cancelled")):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with backlot.session() as s:
            records = [jobs.get_job(s, i) for i in ids]
        if all(r.state in states for r in records):
            return records
        time.sleep(0.3)
    raise AssertionError(f"jobs not finished in {timeout}s: {[(r.id, r.state, r.error) for r in records]}")


def wait_until(predicate, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not reached")
