"""A real Kitsu server (Zou) for the tests: its own virtual environment, a scratch
PostgreSQL database, a local redis-server, gunicorn on loopback.

Zou pins its own versions of Flask, SQLAlchemy, numpy…, which clash with Backlot's, so it
lives in a virtual environment of its own under ~/.cache/backlot-zou (made on first use;
`python -m tests.kitsu.zou_server install` makes it ahead, as .ci/setup does). Previews
need `ffmpeg`/`ffprobe` on PATH (Debian's ffmpeg package).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ZOU_VERSION = "1.0.97"
VENV = Path(os.environ.get("BACKLOT_ZOU_VENV") or Path.home() / ".cache" / "backlot-zou" / f"venv-{ZOU_VERSION}")
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "backlot-test-admin"


def missing_requirements() -> str | None:
    """Why a Zou server cannot run here, or None."""
    for tool in ("redis-server", "ffmpeg", "ffprobe"):
        if not shutil.which(tool):
            return f"{tool} is not installed (.ci/setup installs it with apt-get)"
    return None


def ensure_venv() -> Path:
    """Zou's virtual environment, created and installed on first use."""
    done = VENV / "backlot-installed"  # written last: a half-made environment is made again
    if done.exists():
        return VENV
    shutil.rmtree(VENV, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", f"zou=={ZOU_VERSION}"],
                   check=True)
    done.write_text(ZOU_VERSION)
    return VENV


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ZouServer:
    """Zou on 127.0.0.1 against database `db` of the PostgreSQL at `pg` (host, port, user, password)."""

    def __init__(self, folder: Path, pg: dict, redis_port: int):
        self.folder, self.pg, self.redis_port = folder, pg, redis_port
        self.port, self.events_port = free_port(), free_port()
        self.process: subprocess.Popen | None = None
        self.events: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"  # Zou itself; behind nginx it is usually .../api

    @property
    def events_url(self) -> str:
        return f"http://127.0.0.1:{self.events_port}"

    def environment(self) -> dict:
        (self.folder / "previews").mkdir(parents=True, exist_ok=True)
        (self.folder / "tmp").mkdir(exist_ok=True)
        return dict(
            os.environ, PATH=f"{VENV / 'bin'}:{os.environ.get('PATH', '')}",
            DB_HOST=self.pg["host"], DB_PORT=str(self.pg["port"]), DB_USERNAME=self.pg["user"],
            DB_PASSWORD=self.pg["password"], DB_DATABASE=self.pg["database"],
            KV_HOST="127.0.0.1", KV_PORT=str(self.redis_port), SECRET_KEY="backlot-tests-only-" + "0" * 32,
            PREVIEW_FOLDER=str(self.folder / "previews"), TMP_DIR=str(self.folder / "tmp"),
            ENABLE_JOB_QUEUE="False", INDEXER_HOST="127.0.0.1", INDEXER_PORT=str(free_port()),
            MAIL_DEBUG="1", USER_LIMIT="100", FLASK_ENV="production",
        )

    def initialise(self) -> None:
        env = self.environment()
        zou = str(VENV / "bin" / "zou")
        for args in (["init-db"], ["init-data"], ["create-admin", ADMIN_EMAIL, "--password", ADMIN_PASSWORD]):
            subprocess.run([zou, *args], env=env, check=True, capture_output=True, cwd=self.folder)

    def start(self) -> None:
        self.log = open(self.folder / "zou.log", "wb")
        gunicorn = str(VENV / "bin" / "gunicorn")
        self.process = subprocess.Popen(
            [gunicorn, "--bind", f"127.0.0.1:{self.port}", "--workers", "1", "--timeout", "120", "zou.app:app"],
            env=self.environment(), cwd=self.folder, stdout=self.log, stderr=subprocess.STDOUT)
        # Kitsu's event stream: a Socket.IO server fed through Redis by the API process.
        self.events = subprocess.Popen(
            [gunicorn, "--bind", f"127.0.0.1:{self.events_port}", "--workers", "1",
             "--worker-class", "geventwebsocket.gunicorn.workers.GeventWebSocketWorker", "zou.event_stream:app"],
            env=self.environment(), cwd=self.folder, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Zou exited at start: see {self.folder / 'zou.log'}")
            try:
                urllib.request.urlopen(self.url, timeout=1).read()
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"Zou did not answer within 60 s: see {self.folder / 'zou.log'}")

    def stop(self) -> None:
        for process in (self.process, self.events):
            if process and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
        if getattr(self, "log", None):
            self.log.close()


if __name__ == "__main__" and sys.argv[1:] == ["install"]:
    print(ensure_venv())
