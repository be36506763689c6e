"""Engines and sessions. With no DATABASE_URL the embedded server is started on first use."""

from __future__ import annotations

from contextlib import contextmanager
from functools import lru_cache
from typing import Iterator

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from backlot.config import Settings, load_settings
from backlot.errors import ConflictError, DatabaseError


def resolve_url(settings: Settings) -> str:
    if settings.database_url:
        return settings.database_url
    from backlot.db.embedded import EmbeddedPostgres

    return EmbeddedPostgres(settings.home).start()


_checked: set = set()


@lru_cache(maxsize=8)
def _engine_for(url: str) -> Engine:
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


def get_engine(settings: Settings | None = None, *, check_schema: bool = True) -> Engine:
    """The engine for the configured database, checked to be reachable and at the head revision.

    The embedded database is ours, so it is migrated automatically; a server given by
    DATABASE_URL is only migrated by `backlot db upgrade`.
    """
    settings = settings or load_settings()
    engine = _engine_for(resolve_url(settings))
    if check_schema and engine.url not in _checked:
        ensure_schema(engine, auto_upgrade=settings.embedded)
        _checked.add(engine.url)  # once per process: the schema does not move under a running command
    return engine


def ensure_schema(engine: Engine, *, auto_upgrade: bool) -> None:
    from backlot.db import migrate

    try:
        with engine.connect() as conn:
            current = migrate.current_revision(conn)
    except OperationalError as exc:
        raise DatabaseError(f"cannot reach the database at {engine.url.render_as_string()}: {exc.orig}") from exc
    head = migrate.head_revision()
    if current == head:
        return
    if auto_upgrade:
        migrate.upgrade(engine)
        return
    raise DatabaseError(
        f"the database schema is at revision {current or 'none'}, this Backlot needs {head}: run `backlot db upgrade`"
    )


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """A session in one transaction: committed when the block ends, rolled back on any error.

    Errors the database raises for bad writes (a rule it enforces, a lost connection) come
    out as Backlot's typed exceptions.
    """
    factory = sessionmaker(bind=engine or get_engine(), expire_on_commit=False)
    with factory() as session:
        try:
            with session.begin():
                yield session
        except DBAPIError as exc:
            raise translate_db_error(exc) from exc


def translate_db_error(exc: DBAPIError) -> Exception:
    """ConflictError for rules the database enforces, DatabaseError when it cannot be reached."""
    if exc.connection_invalidated or isinstance(exc, OperationalError):
        return DatabaseError(f"lost the database connection: {exc.orig}")
    code = getattr(exc.orig, "sqlstate", None) or ""
    diag = getattr(exc.orig, "diag", None)
    message = (diag.message_primary if diag is not None else None) or str(exc.orig)
    if code.startswith("23") or code == "P0001" or code == "40P01" or code == "40001":
        return ConflictError(f"the database refused the change: {message}")
    return exc


def ping(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def listen_connector(url: str):
    """A function that opens an autocommit psycopg connection to `url` (for LISTEN), or None
    when the URL is not PostgreSQL through psycopg."""
    from sqlalchemy.dialects import registry
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql" or parsed.get_driver_name() != "psycopg":
        return None
    import psycopg

    dialect = registry.load(f"{parsed.get_backend_name()}.{parsed.get_driver_name()}")()
    cargs, cparams = dialect.create_connect_args(parsed)
    return lambda: psycopg.connect(*cargs, **cparams, autocommit=True, connect_timeout=10)
