"""Access to a project from outside: API tokens (hashed, scoped to a project and a role) and
webhook subscriptions delivered from the event log. Nothing here speaks HTTP as a server;
services/api does.
"""

from backlot.access.errors import AuthenticationError, PermissionDeniedError
from backlot.access.tokens import (
    IssuedToken,
    Principal,
    TokenRecord,
    authenticate,
    create_token,
    list_tokens,
    parse_expiry,
    parse_role,
    revoke_token,
)
from backlot.access.webhooks import (
    DeliveryRecord,
    SubscriberRecord,
    list_deliveries,
    list_subscribers,
    sign_payload,
    subscribe,
    unsubscribe,
    verify_signature,
)
from backlot.db.access import Role

__all__ = [
    "AuthenticationError", "DeliveryRecord", "IssuedToken", "PermissionDeniedError", "Principal", "Role",
    "SubscriberRecord", "TokenRecord", "authenticate", "create_token", "list_deliveries", "list_subscribers",
    "list_tokens", "parse_expiry", "parse_role", "revoke_token", "sign_payload", "subscribe", "unsubscribe",
    "verify_signature",
]
