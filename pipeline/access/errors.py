"""Access errors: who you are (401) and what you may do (403)."""

from backlot.errors import BacklotError


class AuthenticationError(BacklotError):
    """No token, an unknown one, or one that is expired or revoked."""


class PermissionDeniedError(BacklotError):
    """A valid token whose role does not allow the action."""
