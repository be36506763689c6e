"""Who is calling and what they may do.

A request carries a token as `Authorization: Bearer blt_…` (scripts) or in the
`backlot_token` cookie that the review page's login form sets (browsers). Every route
depends on `require(role)` or, under /api/projects/{project}, on `project_scope(role)`:
the token must be valid (else 401), its project must be the one in the path (else 404,
exactly as for a project that does not exist, so nothing of another project leaks),
and its role at least `role` (else 403).

Cookie-authenticated writes must also send `X-Backlot-CSRF: 1`: a cross-site form cannot
set a header, and the cookie is SameSite=Strict besides.

`annotate_roles` runs on every router when the app is built: it refuses a route without a check, and writes
each route's role into the OpenAPI schema (`x-backlot-role`), which the permission test reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Callable

from fastapi import APIRouter, Depends, Path, Request
from fastapi.routing import APIRoute
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from backlot.access import AuthenticationError, PermissionDeniedError, Principal, authenticate
from backlot.db.access import Role
from backlot.errors import NotFoundError
from backlot.storage import Store
from backlot.refs import CODE_RE
from backlot.services.api.db import db_session

COOKIE = "backlot_token"
CSRF_HEADER = "X-Backlot-CSRF"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
PUBLIC = "public"
ROLE_KEY = "x-backlot-role"

_bearer = HTTPBearer(auto_error=False, description="An API token: `backlot token create --project P --role R`")
_cookie = APIKeyCookie(name=COOKIE, auto_error=False, description="Set by the review page's login form")

DbSession = Annotated[Session, Depends(db_session, scope="function")]
ProjectCode = Annotated[str, Path(description="Project code", pattern=CODE_RE.pattern, max_length=64)]


@dataclass(frozen=True)
class Scope:
    """A caller allowed into the project named in the path."""

    principal: Principal
    session: Session
    store: Store

    @property
    def project(self) -> str:
        return self.principal.project

    @property
    def project_id(self) -> int:
        return self.principal.project_id

    @property
    def actor(self) -> str:
        return self.principal.name


def identify(request: Request, session: Session, bearer: HTTPAuthorizationCredentials | None,
             cookie: str | None) -> Principal:
    header = request.headers.get("authorization")
    if header is not None and bearer is None:
        raise AuthenticationError("the Authorization header must be `Bearer TOKEN`")
    secret = bearer.credentials if bearer is not None else cookie
    principal = authenticate(session, secret)
    if bearer is None and cookie is not None and request.method not in SAFE_METHODS \
            and request.headers.get(CSRF_HEADER) != "1":
        raise PermissionDeniedError(f"a write authenticated by the review cookie must send the {CSRF_HEADER}: 1 header")
    return principal


def check_role(principal: Principal, role: Role) -> None:
    if not principal.allows(role):
        raise PermissionDeniedError(f"this token's role ({principal.role.value}) does not allow this: "
                                    f"it needs {role.value} or above")


def require(role: Role) -> Callable[..., Principal]:
    """A valid token with at least `role` (for routes outside a project)."""

    def dependency(request: Request, session: DbSession,
                   bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
                   cookie: Annotated[str | None, Depends(_cookie)]) -> Principal:
        principal = identify(request, session, bearer, cookie)
        check_role(principal, role)
        return principal

    dependency.backlot_role = role  # type: ignore[attr-defined]
    return dependency


def project_scope(role: Role) -> Callable[..., Scope]:
    """A valid token for the project in the path, with at least `role`."""

    def dependency(request: Request, project: ProjectCode, session: DbSession,
                   bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
                   cookie: Annotated[str | None, Depends(_cookie)]) -> Scope:
        principal = identify(request, session, bearer, cookie)
        if project != principal.project:
            raise NotFoundError(f"no project {project!r}: this token sees only its own project")
        check_role(principal, role)
        return Scope(principal, session, request.app.state.store)

    dependency.backlot_role = role  # type: ignore[attr-defined]
    return dependency


# One dependency object per role, shared by every route (FastAPI caches it within a request).
Viewer = Annotated[Scope, Depends(project_scope(Role.viewer))]
Artist = Annotated[Scope, Depends(project_scope(Role.artist))]
Supervisor = Annotated[Scope, Depends(project_scope(Role.supervisor))]
Admin = Annotated[Scope, Depends(project_scope(Role.admin))]
AnyToken = Annotated[Principal, Depends(require(Role.viewer))]


def public() -> dict:
    """openapi_extra for the few routes anyone may call (login form, static files, health)."""
    return {ROLE_KEY: PUBLIC}


def annotate_roles(router: APIRouter) -> APIRouter:
    """Write each route's required role into its OpenAPI entry; refuse to build with an unchecked route.

    Runs on each router before the app includes it."""
    for route in router.routes:
        if not isinstance(route, APIRoute):
            continue
        extra = route.openapi_extra or {}
        roles = {getattr(d.call, "backlot_role", None) for d in _walk(route.dependant)} - {None}
        if extra.get(ROLE_KEY) == PUBLIC and not roles:
            continue
        if len(roles) != 1:
            raise RuntimeError(f"route {route.path} must depend on exactly one access check, found {roles or 'none'}")
        route.openapi_extra = {**extra, ROLE_KEY: roles.pop().value}
    return router


def _walk(dependant):
    for dep in dependant.dependencies:
        yield dep
        yield from _walk(dep)
