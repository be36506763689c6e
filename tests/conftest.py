"""Test fixtures: a real PostgreSQL for the whole run, isolated per test.

With BACKLOT_TEST_DATABASE_URL set (a server where we may create databases) the tests
use it; otherwise they start Backlot's embedded server in a temporary BACKLOT_HOME and
stop it at the end. A migrated template database is cloned for tests that need to
commit (CLI, concurrency); the rest run inside a transaction that is rolled back.
"""

from __future__ import annotations

import os
import shutil

# Idle OpenMP threads sleep (see backlot.generation.device): set before any test imports torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import tempfile
import traceback
import uuid
from pathlib import Path
from typing import Iterator

import psycopg
import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from backlot.db import migrate
from backlot.db.embedded import EmbeddedPostgres

# One learned stand-in build per run, shared by every test home and CLI subprocess; kept
# between runs only when BACKLOT_TEST_STANDIN_CACHE names a folder.
_RUN_STANDIN_CACHE = os.path.join(tempfile.gettempdir(), f"backlot-test-standin-{os.getpid()}")
os.environ.setdefault("BACKLOT_STANDIN_CACHE", os.environ.get("BACKLOT_TEST_STANDIN_CACHE") or _RUN_STANDIN_CACHE)


# A test that forgets the `env` fixture would otherwise use (and start an embedded PostgreSQL
# in) the runner's own ~/.backlot, and leave it running: it gets this run's fallback home
# instead, which is cleaned up at the end and named in a warning with the first such test.
_FALLBACK_HOME = Path(tempfile.gettempdir()) / f"backlot-test-home-{os.getpid()}"
os.environ.setdefault("BACKLOT_HOME", str(_FALLBACK_HOME))
_FALLBACK_USERS: list[str] = []


def pytest_runtest_teardown(item):
    if not _FALLBACK_USERS and _FALLBACK_HOME.exists():
        _FALLBACK_USERS.append(item.nodeid)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_RUN_STANDIN_CACHE, ignore_errors=True)
    if _FALLBACK_HOME.exists():
        made = sorted(p.name for p in _FALLBACK_HOME.iterdir())
        stopped = EmbeddedPostgres(_FALLBACK_HOME).stop()
        shutil.rmtree(_FALLBACK_HOME, ignore_errors=True)
        first = _FALLBACK_USERS[0] if _FALLBACK_USERS else "a session-scoped fixture"
        print(f"\nwarning: {first} (or one before it) used the run's fallback BACKLOT_HOME instead of "
              f"the env fixture (it made {', '.join(made) or 'the folder'})"
              f"{'; its embedded PostgreSQL was stopped' if stopped else ''}")


TEMPLATE = "backlot_template"


def _admin(url: str) -> psycopg.Connection:
    plain = make_url(url).set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    return psycopg.connect(plain, autocommit=True)


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory) -> Iterator[str]:
    """URL of a PostgreSQL server (its `postgres` database is used for admin commands)."""
    if url := os.environ.get("BACKLOT_TEST_DATABASE_URL"):
        yield url
        return
    # Outside pytest's basetemp: a concurrent pytest run prunes old basetemp folders, and
    # with them a live cluster's data directory.
    home = Path(tempfile.mkdtemp(prefix="backlot-test-pg-"))
    server = EmbeddedPostgres(home, server_options="-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
    url = server.start()
    try:
        yield url
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def template_url(pg_server) -> str:
    with _admin(pg_server) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {TEMPLATE}")
    url = make_url(pg_server).set(database=TEMPLATE).render_as_string(hide_password=False)
    engine = create_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    return url


def create_database(template_url: str, prefix: str = "t", *, migrated: bool = True) -> str:
    """A fresh database (a clone of the migrated template, or empty); returns its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with _admin(template_url) as conn:
        conn.execute(f"CREATE DATABASE {name}" + (f" TEMPLATE {TEMPLATE}" if migrated else ""))
    return make_url(template_url).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    from backlot.db.engine import _engine_for

    for engine in [_engine_for(url)]:
        engine.dispose()
    with _admin(url) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {make_url(url).database} WITH (FORCE)")


@pytest.fixture(scope="session")
def shared_db_url(template_url) -> Iterator[str]:
    url = create_database(template_url, "shared")
    yield url
    drop_database(url)


@pytest.fixture
def env(tmp_path, monkeypatch) -> Path:
    """A private BACKLOT_HOME and store for the test; DATABASE_URL is set by the db fixtures."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("BACKLOT_HOME", str(home))
    monkeypatch.setenv("BACKLOT_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("BACKLOT_USER", "tester")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return home


@pytest.fixture
def db_url(template_url, env, monkeypatch) -> Iterator[str]:
    """A fresh committed-to database for this test, also exported as DATABASE_URL."""
    url = create_database(template_url)
    monkeypatch.setenv("DATABASE_URL", url)
    yield url
    drop_database(url)


@pytest.fixture
def session(shared_db_url, env) -> Iterator[Session]:
    """A session whose work is rolled back at the end of the test (commits become savepoints)."""
    from backlot.db.engine import _engine_for

    engine = _engine_for(shared_db_url)
    with engine.connect() as conn:
        outer = conn.begin()
        with Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False) as s:
            yield s
        outer.rollback()


@pytest.fixture
def run(db_url):
    """Run a `backlot` command in-process against the test database; checks its exit code."""
    from typer.testing import CliRunner

    from backlot.services.cli.app import app

    runner = CliRunner()

    def invoke(*args, code=0):
        result = runner.invoke(app, [str(a) for a in args])
        assert result.exit_code == code, (result.stdout, result.stderr, result.exception,
                                          "".join(traceback.format_exception(*result.exc_info))[-3000:])
        return result

    return invoke


@pytest.fixture
def files(tmp_path) -> "FileMaker":
    return FileMaker(tmp_path / "src")


class FileMaker:
    """Writes small source files with chosen content."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def __call__(self, name: str, content: bytes | str | None = None) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        data = content if content is not None else f"content of {name}"
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return path
