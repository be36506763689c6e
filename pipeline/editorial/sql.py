"""Running the editorial queries that take a cut's worth of ids."""

from __future__ import annotations

from typing import Any, Callable

from sqlalchemy import text
from sqlalchemy.orm import Session

# fetch_custom_plan's settings: the saved values, then JIT off and custom plans for the rest of the transaction.
_CUSTOM_PLAN = ("SELECT current_setting('jit'), current_setting('plan_cache_mode'), set_config('jit', 'off', true), "
                "set_config('plan_cache_mode', 'force_custom_plan', true)")
_RESTORE = "SELECT set_config('jit', %s, true), set_config('plan_cache_mode', %s, true)"


def execute_custom_plan(session: Session, sql: str, params: dict[str, Any]) -> list[Any]:
    """Rows of `sql`, planned for these very parameters, without JIT.

    psycopg prepares a statement run often, and PostgreSQL may then switch to a generic plan
    that cannot see how many ids the array holds (hundreds of milliseconds instead of tens);
    with a cut's worth of ids the estimates can also cross the JIT thresholds, and compiling
    costs more than the query. Both settings are restored for the rest of the transaction.
    """
    saved = session.execute(text(
        "SELECT current_setting('jit'), current_setting('plan_cache_mode'), set_config('jit', 'off', true), "
        "set_config('plan_cache_mode', 'force_custom_plan', true)")).one()
    rows = session.execute(text(sql), params).all()
    session.execute(text("SELECT set_config('jit', :jit, true), set_config('plan_cache_mode', :mode, true)"),
                    {"jit": saved[0], "mode": saved[1]})
    return rows


def fetch_rows(session: Session, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    """Rows as plain tuples straight from the driver (no result-row objects: thousands of rows
    cost milliseconds, not tens), in the session's transaction; psycopg's `%s` parameters."""
    session.flush()  # as session.execute would: the query sees what the session holds
    with session.connection().connection.driver_connection.cursor() as cursor:
        return cursor.execute(sql, params).fetchall()


def fetch_custom_plan(session: Session, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """execute_custom_plan as plain tuples (see fetch_rows), with `%(name)s` parameters."""
    session.flush()
    with session.connection().connection.driver_connection.cursor() as cursor:
        saved = cursor.execute(_CUSTOM_PLAN).fetchone()
        rows = cursor.execute(sql, params).fetchall()
        cursor.execute(_RESTORE, (saved[0], saved[1]))
    return rows


def fetch_custom_plan_sent(session: Session, sql: str, params: dict[str, Any],
                           sent: Callable[[], object]) -> list[tuple[Any, ...]]:
    """fetch_custom_plan that calls `sent` once the query is on its way to the server (psycopg's
    pipeline mode): from then on this thread only waits for the rows, so work started in another
    thread (which may hold the interpreter for long) no longer delays the query."""
    session.flush()
    connection = session.connection().connection.driver_connection
    with connection.cursor() as settings, connection.cursor() as cursor:
        saved = settings.execute(_CUSTOM_PLAN).fetchone()
        with connection.pipeline():
            cursor.execute(sql, params)
            settings.execute(_RESTORE, (saved[0], saved[1]))
            sent()
        return cursor.fetchall()
