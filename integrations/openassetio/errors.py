"""Exceptions the Backlot manager raises for a whole call (per-element problems are BatchElementErrors)."""

from openassetio.errors import OpenAssetIOException


class BacklotDatabaseError(OpenAssetIOException):
    """The Backlot database cannot be reached (or is at the wrong schema revision): nothing was done."""
