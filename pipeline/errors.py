"""Typed exceptions raised by the `backlot` API.

Every error a user can cause is a `BacklotError`; the CLI prints its message on one
line and exits with code 2. Messages say what is wrong and what to do.
"""


def article(word: str) -> str:
    """`word` with its indefinite article, for messages: "an adapter", "a base_model"."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


class BacklotError(Exception):
    """Base class for errors a user or script can act on."""


class InvalidInputError(BacklotError, ValueError):
    """Malformed reference, bad name, invalid status, unreadable file, ..."""


class NotFoundError(BacklotError, LookupError):
    """An unknown project, sequence, shot, asset or version."""


class ConflictError(BacklotError):
    """A duplicate code, or a write that contradicts what is stored."""


class DatabaseError(BacklotError):
    """The database cannot be reached, started, or is at the wrong schema revision."""
