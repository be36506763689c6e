"""Every error is a 4xx with one clear message (never a stack trace), as JSON for the API and as a
small page for the review pages; a 401 on a review page leads to the login form.
"""

from __future__ import annotations

import html
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel
from sqlalchemy.exc import DataError, DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from backlot.access.errors import AuthenticationError, PermissionDeniedError
from backlot.errors import (BacklotError, ConflictError, DatabaseError, InvalidInputError, NotFoundError,
                            StoreUnavailableError)

log = logging.getLogger("backlot.api")


class ErrorBody(BaseModel):
    error: str
    details: list[dict[str, Any]] | None = None


class BodyTooLarge(Exception):
    def __init__(self, limit: int):
        super().__init__(f"request body is larger than {limit:,} bytes")


STATUS_FOR = [
    (AuthenticationError, 401),
    (PermissionDeniedError, 403),
    (NotFoundError, 404),
    (ConflictError, 409),
    (InvalidInputError, 400),
    (DatabaseError, 503),
    (StoreUnavailableError, 503),
]

# Documented on every route, so clients (and schemathesis) know the error shape.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": what}
    for code, what in [(400, "Bad input"), (401, "Missing, unknown, expired or revoked token"),
                       (403, "The token's role does not allow this"), (404, "Not found (or not visible to this token)"),
                       (413, "Request body too large"), (422, "Request does not match the schema")]
}


def status_for(exc: BacklotError) -> int:
    return next((code for kind, code in STATUS_FOR if isinstance(exc, kind)), 400)


def respond(request: Request, status: int, message: str, details: list[dict[str, Any]] | None = None,
            headers: dict[str, str] | None = None) -> Response:
    if _is_page(request):
        if status == 401:  # the sign-in form, with a note for a person only when a token stopped working
            ended = request.cookies.get("backlot_token") or request.headers.get("authorization")
            return RedirectResponse("/review/login?reason=ended" if ended else "/review/login", status_code=303)
        return HTMLResponse(_error_page(status, message), status_code=status, headers=headers)
    return JSONResponse(ErrorBody(error=message, details=details).model_dump(exclude_none=True), status_code=status,
                        headers=headers)


def install(app: FastAPI) -> None:
    app.add_exception_handler(BacklotError, _backlot_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(BodyTooLarge, _too_large)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(Exception, _unexpected)


async def _backlot_error(request: Request, exc: BacklotError) -> Response:
    status = status_for(exc)
    headers = {"WWW-Authenticate": 'Bearer realm="backlot"'} if status == 401 else None
    return respond(request, status, str(exc), headers=headers)


async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return respond(request, 400, "request body is not valid JSON", _plain(errors))
    first = errors[0] if errors else {}
    loc = [str(p) for p in first.get("loc", ())]
    kind = {"body": "field", "query": "query parameter", "path": "path parameter", "header": "header",
            "cookie": "cookie"}.get(loc[0] if loc else "", "input")
    where = ".".join(loc[1:]) or (loc[0] if loc else "request")
    message = f"invalid {kind} {where}: {first.get('msg', 'does not match the schema')}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return respond(request, 422, message, _plain(errors))


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, BodyTooLarge):  # raised while FastAPI parsed a form, which wraps it in a 400
        return respond(request, 413, str(cause))
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    if exc.status_code == 404 and message == "Not Found":
        message = f"no route {request.url.path}: see /docs for the API"
    if exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    return respond(request, exc.status_code, message, headers=getattr(exc, "headers", None))


async def _too_large(request: Request, exc: BodyTooLarge) -> Response:
    return respond(request, 413, str(exc))


async def _database_error(request: Request, exc: DBAPIError) -> Response:
    # Values that passed validation but that PostgreSQL still refuses (class 22: data exceptions).
    code = getattr(exc.orig, "sqlstate", "") or ""
    if code.startswith("22") or isinstance(exc, DataError):
        diag = getattr(exc.orig, "diag", None)
        return respond(request, 400, f"the database refused a value: {getattr(diag, 'message_primary', None) or exc.orig}")
    return await _unexpected(request, exc)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return respond(request, 500, "internal error: the server log has the details")


def _plain(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validation details without the raw input (which may be huge, or binary)."""
    return [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in errors[:20]]


def _is_page(request: Request) -> bool:
    return request.url.path == "/review" or request.url.path.startswith("/review/")


def _error_page(status: int, message: str) -> str:
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{status} · Backlot</title>"
            f"<link rel=stylesheet href=/review/static/review.css>"
            f"<link rel=icon href=/review/static/favicon.svg type=image/svg+xml></head><body><main class=error>"
            f"<h1>{status}</h1><p>{html.escape(message)}</p><p><a href=/review>Back to the review page</a></p>"
            f"</main></body></html>")
