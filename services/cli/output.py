"""Output for the CLI: rich tables for people, JSON on stdout for scripts, errors on stderr."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Sequence

import typer
from rich.console import Console
from rich.table import Table

from backlot.errors import BacklotError

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

EXIT_USER_ERROR = 2


def emit_json(data: Any) -> None:
    """Machine-readable output: exactly one JSON document on stdout, nothing else."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def emit_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*["" if v is None else str(v) for v in row])
    out.print(table)


def fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    return typer.Exit(EXIT_USER_ERROR)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn Backlot's typed errors into a one-line message and exit code 2."""
    try:
        yield
    except BacklotError as exc:
        raise fail(str(exc)) from None
