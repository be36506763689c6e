"""Errors for bad edit files: one line naming the file and, where known, the line, event and clip."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from backlot.errors import InvalidInputError


class Where(NamedTuple):  # a named tuple: an import keeps one per clip
    """A place in an edit file, as precise as the format allows."""

    file: str
    line: int | None = None
    event: str | None = None
    clip: str | None = None

    def __str__(self) -> str:
        parts = [self.file]
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.event is not None:
            parts.append(f"event {self.event}")
        if self.clip:
            parts.append(f"clip {self.clip!r}")
        return ", ".join(parts)


class CutInputError(InvalidInputError):
    """An edit file Backlot cannot use; the message says where and what to do."""

    def __init__(self, where: Where, problem: str):
        self.where = where
        self.problem = problem
        super().__init__(f"{where}: {_one_line(problem)}")


def file_label(path: str | Path) -> str:
    return Path(path).name or str(path)


def _one_line(text: str) -> str:
    cleaned = " ".join(str(text).split())
    return cleaned if len(cleaned) <= 400 else cleaned[:397] + "..."
