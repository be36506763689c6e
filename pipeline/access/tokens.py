"""API tokens: created for one project and one role, stored hashed, revocable, optionally expiring.

The secret is shown once, when the token is created; the database keeps its sha256. A
secret has 256 random bits, so a plain hash is as good as a slow one here (there is
nothing to brute-force) and lets every request find its token with one index lookup.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from backlot.access.errors import AuthenticationError
from backlot.db.access import ApiToken, Role
from backlot.db.models import Project
from backlot.errors import InvalidInputError, NotFoundError
from backlot.tracker.choices import parse_choice
from backlot.tracker.projects import _actor, find_project
from backlot.tracker.records import _Record

SECRET_PREFIX = "blt_"
_SECRET_RE = re.compile(r"^blt_[A-Za-z0-9_-]{43}$")
_DURATION_RE = re.compile(r"^(\d{1,6})([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MAX_LIFETIME = timedelta(days=3660)


@dataclass(frozen=True)
class TokenRecord(_Record):
    id: int
    project: str
    role: str
    name: str
    prefix: str
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def state(self, now: datetime | None = None) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= (now or _now()):
            return "expired"
        return "active"


@dataclass(frozen=True)
class IssuedToken:
    """A new token: `secret` is the only copy of what the client sends; it is never stored."""

    record: TokenRecord
    secret: str


@dataclass(frozen=True)
class Principal:
    """Who is calling: a valid token, its project and its role."""

    token_id: int
    project_id: int
    project: str
    role: Role
    name: str

    def allows(self, needed: Role) -> bool:
        return self.role.allows(needed)


def parse_role(value: str | Role) -> Role:
    return parse_choice(Role, value, "role")


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(timezone.utc)


def parse_expiry(value: str | datetime | timedelta | None, now: datetime | None = None) -> datetime | None:
    """When a token expires: a duration ('90m', '12h', '30d', '2w'), a date (its start, UTC) or an ISO time."""
    now = now or _now()
    if value is None or value == "":
        return None
    if isinstance(value, timedelta):
        moment = now + value
    elif isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    else:
        moment = _parse_expiry_text(str(value).strip(), now)
    if moment <= now:
        raise InvalidInputError(f"expiry {value!s} is in the past: give a future time or a duration like 30d")
    if moment - now > MAX_LIFETIME:
        raise InvalidInputError(f"expiry {value!s} is more than ten years away: leave it out for no expiry")
    return moment


def _parse_expiry_text(text: str, now: datetime) -> datetime:
    if match := _DURATION_RE.match(text):
        return now + timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(0), tzinfo=timezone.utc)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInputError(
            f"expiry {text!r} is invalid: use a duration (90m, 12h, 30d, 2w), a date (2027-01-31) or an ISO time"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def create_token(session: Session, project: str, role: str | Role, *, name: str | None = None,
                 expires: str | datetime | timedelta | None = None, actor: str | None = None) -> IssuedToken:
    """A new token for `project` with `role`; the returned secret is shown once and never stored."""
    wanted = parse_role(role)
    holder = (name or _actor(actor)).strip()
    if not holder or len(holder) > 100 or not holder.isprintable():
        raise InvalidInputError("token name must be 1 to 100 printable characters (who or what holds it)")
    expires_at = parse_expiry(expires)
    proj = find_project(session, project)
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(project_id=proj.id, role=wanted, name=holder, token_hash=hash_secret(secret),
                     prefix=secret[:12], created_by=_actor(actor), expires_at=expires_at)
    session.add(token)
    session.flush()
    return IssuedToken(_record(token, proj.code), secret)


def list_tokens(session: Session, project: str | None = None) -> list[TokenRecord]:
    stmt = select(ApiToken, Project.code).join(Project, Project.id == ApiToken.project_id).order_by(ApiToken.id)
    if project is not None:
        stmt = stmt.where(ApiToken.project_id == find_project(session, project).id)
    return [_record(token, code) for token, code in session.execute(stmt)]


def revoke_token(session: Session, ident: int | str) -> TokenRecord:
    """Revoke a token by id or by its prefix (`blt_xxxxxxxx`); revoking twice changes nothing."""
    stmt = select(ApiToken, Project.code).join(Project, Project.id == ApiToken.project_id).with_for_update(of=ApiToken)
    if isinstance(ident, int) or str(ident).isdigit():
        stmt = stmt.where(ApiToken.id == int(ident))
    else:
        stmt = stmt.where(ApiToken.prefix == str(ident))
    row = session.execute(stmt).first()
    if row is None:
        raise NotFoundError(f"no token {ident!r}: list them with `backlot token list`")
    token, code = row
    if token.revoked_at is None:
        token.revoked_at = _now()
        session.flush()
    return _record(token, code)


def authenticate(session: Session, secret: str | None, now: datetime | None = None) -> Principal:
    """The principal behind a token secret, or AuthenticationError saying what is wrong with it."""
    if not secret:
        raise AuthenticationError("no API token: send `Authorization: Bearer TOKEN` (create one with "
                                  "`backlot token create --project P --role R`)")
    if not _SECRET_RE.match(secret):
        raise AuthenticationError("the API token is malformed: it starts with blt_ followed by 43 characters")
    row = session.execute(
        select(ApiToken, Project.code).join(Project, Project.id == ApiToken.project_id)
        .where(ApiToken.token_hash == hash_secret(secret))
    ).first()
    if row is None:
        raise AuthenticationError(f"unknown API token {secret[:12]}…: it was never issued by this Backlot")
    token, code = row
    if token.revoked_at is not None:
        raise AuthenticationError(f"API token {token.prefix}… was revoked on {_utc(token.revoked_at)}")
    if token.expires_at is not None and token.expires_at <= (now or _now()):
        raise AuthenticationError(f"API token {token.prefix}… expired on {_utc(token.expires_at)}: "
                                  "create a new one")
    return Principal(token.id, token.project_id, code, token.role, token.name)


def _utc(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _record(token: ApiToken, project: str) -> TokenRecord:
    return TokenRecord(token.id, project, token.role.value, token.name, token.prefix, token.created_by,
                       token.created_at, token.expires_at, token.revoked_at)
