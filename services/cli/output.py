"""Output for the CLI: rich tables for people, JSON on stdout for scripts, errors on stderr.

Rich reads `[...]` as markup and `:name:` as emoji: text that comes from users or the database
(codes, names, notes, recipes, file names) is printed with `markup=False`, escaped with
`escape()` inside a styled line, or put in a table (cells and titles are never markup).
Piped or redirected, stdout does not wrap: a table row is one line and a reference is never split.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Sequence

import typer
from rich.console import Console, ConsoleDimensions
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from backlot.errors import BacklotError

PIPE_WIDTH = 1_000_000  # "no wrapping" for Rich: tables and lines as wide as their content


class _Console(Console):
    """A console that, when its stream is not a terminal, is as wide as what it prints."""

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        return size if self.is_terminal else ConsoleDimensions(PIPE_WIDTH, size.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


out = _Console(highlight=False, emoji=False)
err = Console(stderr=True, highlight=False, emoji=False)

__all__ = ["EXIT_INTERRUPTED", "EXIT_USER_ERROR", "emit_json", "emit_table", "err", "escape", "fail", "out", "user_errors"]

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C


def emit_json(data: Any) -> None:
    """Machine-readable output: exactly one JSON document on stdout, nothing else."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def emit_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A table on stdout; its title and cells are shown as they are (never read as markup)."""
    table = Table(title=None if title is None else Text(title), show_lines=False)
    for column in columns:
        table.add_column(Text(column), overflow="fold")
    for row in rows:
        table.add_row(*[Text("" if v is None else str(v)) for v in row])
    out.print(table)


def fail(message: str) -> typer.Exit:
    err.print(Text.assemble(("error:", "bold red"), " ", message), soft_wrap=True)
    return typer.Exit(EXIT_USER_ERROR)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn Backlot's typed errors into a one-line message and exit code 2."""
    try:
        yield
    except BacklotError as exc:
        raise fail(str(exc)) from None
