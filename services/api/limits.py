"""Request body limits, checked before anything reads the body and again while it streams in.

A declared Content-Length over the limit is refused at once (413); a chunked body is counted
as it arrives and refused when it passes the limit. Multipart uploads (publishing files) get
their own, larger limit.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backlot.services.api.errors import BodyTooLarge


class BodyLimit:
    def __init__(self, app: ASGIApp, *, max_json: int, max_upload: int):
        self.app = app
        self.max_json = max_json
        self.max_upload = max_upload

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        multipart = headers.get("content-type", "").lower().startswith("multipart/form-data")
        limit = self.max_upload if multipart else self.max_json
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                await _refuse(send, 400, "Content-Length must be a number of bytes")
                return
            if int(declared) > limit:
                await _refuse(send, 413, str(BodyTooLarge(limit)))
                return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counted, send)


async def _refuse(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
