"""Typed exceptions raised by the `backlot` API.

Every error a user can cause is a `BacklotError`; the CLI prints its message on one
line and exits with code 2. Messages say what is wrong and what to do.
"""


# Names read letter by letter that start with a vowel sound ("an sd adapter", "an ltx base").
_SPELLED_WITH_VOWEL_SOUND = ("sd", "ltx", "fbx", "exr", "mp4", "otio")


def article(word: str) -> str:
    """`word` with its indefinite article, for messages: "an adapter", "a base_model", "an sd adapter"."""
    vowel = word[:1].lower() in "aeiou" or word.split()[0].lower().startswith(_SPELLED_WITH_VOWEL_SOUND)
    return f"{'an' if vowel else 'a'} {word}"


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


class StoreUnavailableError(BacklotError):
    """The file store cannot be reached (an object store endpoint down): try again later."""
