"""One connection for the small batches a DCC sends (one node, one read, one texture).

A single reference through the pool and an unprepared statement cost ~0.5 ms, most of it
the server parsing and planning the statement again. Here every statement is prepared once
per connection (psycopg's `prepare=True`: the first call sends Parse, later calls only
Bind/Execute, still one round trip) and the session plans them generically
(`plan_cache_mode=force_generic_plan`: index lookups, which is the right plan for a few
references; large batches keep the pool's custom plans, which pick hash joins). The
connection is raw psycopg (no SQLAlchemy checkout, events or Row objects) and is used by
one thread at a time: a caller that finds it busy gets None and uses the pool instead.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.types.numeric import Int8Dumper

from backlot.errors import DatabaseError

SMALL_BATCH = 256  # at most this many references go through the prepared connection

_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


@functools.lru_cache(maxsize=256)
def psycopg_sql(sqlalchemy_text: str) -> str:
    """A SQLAlchemy `text()` statement's SQL with `:name` parameters as psycopg's `%(name)s`."""
    return _NAMED.sub(r"%(\1)s", sqlalchemy_text.replace("%", "%%"))


class PreparedReader:
    """An autocommit connection whose statements are prepared once and planned generically."""

    def __init__(self, connect: Callable[..., psycopg.Connection], warm: list[tuple[str, dict[str, Any]]] = ()):
        self._connect_raw = connect
        # Statements prepared as the connection opens: a statement's first use would otherwise
        # take two round trips (Parse, then Bind/Execute).
        self._warm = list(warm)
        self._lock = threading.Lock()
        self._conn: psycopg.Connection | None = None
        self._cursor: psycopg.Cursor | None = None

    def fetch(self, sql: str, params: dict[str, Any]) -> tuple[list[str], list[tuple]] | None:
        """(column names, rows), or None when another thread is using the connection."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            for attempt in (1, 2):
                try:
                    cursor = self._cursor or self._open()
                    cursor.execute(sql, params, prepare=True)
                    return [c.name for c in cursor.description], cursor.fetchall()
                except (psycopg.OperationalError, psycopg.errors.FeatureNotSupported) as exc:
                    # A dropped connection, or a prepared plan a migration invalidated: once more, fresh.
                    self._close()
                    if attempt == 2:
                        raise DatabaseError(f"lost the database connection: {exc}") from exc
                except psycopg.Error as exc:
                    self._close()
                    raise DatabaseError(f"the Backlot database failed: {exc}") from exc
            raise AssertionError("unreachable")
        finally:
            self._lock.release()

    def trace(self, fileno: int | None) -> None:
        """Trace this connection's protocol to `fileno` (None: stop); for tests counting round trips."""
        conn = self._conn
        if conn is None:
            self._open()
            conn = self._conn
        if fileno is None:
            conn.pgconn.untrace()
        else:
            conn.pgconn.trace(fileno)

    def close(self) -> None:
        with self._lock:
            self._close()

    def _open(self) -> psycopg.Cursor:
        try:
            conn = self._connect_raw(options="-c jit=off -c plan_cache_mode=force_generic_plan")
        except psycopg.OperationalError as exc:
            raise DatabaseError(f"lost the database connection: {exc}") from exc
        # Every int as int8: a statement's parameter types, so its prepared form, then do not
        # depend on how large the numbers in a batch are.
        conn.adapters.register_dumper(int, Int8Dumper)
        cursor = conn.cursor()
        for sql, params in self._warm:
            cursor.execute(sql, params, prepare=True)
            cursor.fetchall()
        self._conn, self._cursor = conn, cursor
        return cursor

    def _close(self) -> None:
        conn, self._conn, self._cursor = self._conn, None, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass
