"""Media by content hash, with its type from the file's name and HTTP range requests (a video seeks).

A file is served only to tokens of a project that has a version with that file. The body is
read from the store in chunks; `Range: bytes=a-b`, `a-` and `-n` get 206 with Content-Range,
an unsatisfiable range 416, several ranges at once the whole file (RFC 9110 lets a server
ignore Range). Content never changes for a hash, so the hash is a strong ETag and responses
may be cached for good. Media is sandboxed (CSP) so an uploaded SVG or HTML runs no script.

A generated file is served as its signed copy (Content Credentials, `signed_files`) when one
exists: that of `?version=ID`, else of the first version that had this content (so a URL keeps
serving the same bytes). Its ETag is the signed copy's sha256. Otherwise the stored bytes.
"""

from __future__ import annotations

import mimetypes
import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Iterator

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import select

from backlot.db.models import Version, VersionFile
from backlot.db.provenance import SignedFile
from backlot.errors import BacklotError, NotFoundError, StoreUnavailableError
from backlot.services.api.auth import Viewer
from backlot.services.api.errors import ERROR_RESPONSES
from backlot.services.api.paging import MAX_ID

router = APIRouter(prefix="/api/projects/{project}", responses=ERROR_RESPONSES, tags=["media"])

CHUNK = 256 * 1024
Sha256 = Annotated[str, Path(pattern="^[0-9a-f]{64}$", description="sha256 of the file's content")]
_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
EXTRA_TYPES = {".exr": "image/x-exr", ".safetensors": "application/octet-stream", ".otio": "application/json",
               ".mp4": "video/mp4", ".mov": "video/quicktime", ".webm": "video/webm", ".svg": "image/svg+xml",
               ".webp": "image/webp", ".avif": "image/avif"}


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class Unsatisfiable(Exception):
    pass


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one range asked for, None for the whole file; Unsatisfiable when it lies past the end."""
    if not header:
        return None
    match = _RANGE_RE.match(header.strip())
    if match is None:
        return None  # several ranges, or a unit we do not know: send everything
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise Unsatisfiable()
        return ByteRange(max(0, size - suffix), size - 1)
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        raise Unsatisfiable()
    return ByteRange(start, end)


def media_type(name: str) -> str:
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return EXTRA_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"


@contextmanager
def store_call(what: str) -> Iterator[None]:
    """A store that cannot be reached is a 503 with a reason, not a 500 (an S3 endpoint down)."""
    try:
        yield
    except BacklotError:
        raise
    except Exception as exc:  # noqa: BLE001 - s3fs/botocore/OS errors of an unreachable store
        raise StoreUnavailableError(f"the file store cannot be reached ({what}: {type(exc).__name__}); "
                                    "try again shortly") from exc


def read_chunks(handle, start: int, length: int) -> Iterator[bytes]:
    """Stream from an object opened before the response started (so opening can still fail as a 503)."""
    with handle:
        handle.seek(start)
        left = length
        while left > 0:
            chunk = handle.read(min(CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk


MEDIA_RESPONSES = {200: {"content": {"application/octet-stream": {}}, "description": "The file"},
                   206: {"description": "Part of the file (Range)"}, 304: {"description": "Not modified"},
                   416: {"description": "Range not satisfiable"}}


VersionId = Annotated[int | None, Query(ge=1, le=MAX_ID, description="Serve this version's signed copy (Content Credentials) "
                                              "of the content; default: the first version's")]


@router.get("/media/{sha256}", response_class=Response, responses=MEDIA_RESPONSES)
def get_media(scope: Viewer, sha256: Sha256, request: Request, version: VersionId = None) -> Response:
    """A file of one of the project's versions, by the sha256 of its content (its signed copy when it has one)."""
    return serve_media(scope, sha256, request, version)


@router.head("/media/{sha256}", response_class=Response, responses=MEDIA_RESPONSES)
def head_media(scope: Viewer, sha256: Sha256, request: Request, version: VersionId = None) -> Response:
    """The headers of GET: type, length, ETag, ranges."""
    return serve_media(scope, sha256, request, version)


def serve_media(scope, sha256: str, request: Request, version: int | None = None) -> Response:
    of_version = [VersionFile.version_id == version] if version is not None else []
    row = scope.session.execute(
        select(VersionFile.path, VersionFile.size).join(Version, Version.id == VersionFile.version_id)
        .where(VersionFile.sha256 == sha256, Version.project_id == scope.project_id, *of_version)
        .order_by(VersionFile.path).limit(1)
    ).first()
    if row is None:
        where = f"version {version} of project" if version is not None else "project"
        raise NotFoundError(f"no file with content {sha256[:12]}… in {where} {scope.project}")
    served, size = signed_copy(scope, sha256, version) or (sha256, row.size)
    with store_call("looking up the file"):
        present = scope.store.exists(served)
    if not present:
        raise NotFoundError(f"{row.path} ({served[:12]}…) is not in the store: it was published in place")
    etag = f'"{served}"'
    headers = {
        "ETag": etag, "Accept-Ranges": "bytes", "Cache-Control": "private, max-age=31536000, immutable",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox",
        "Content-Disposition": f'inline; filename="{_ascii_name(row.path)}"',
    }
    kind = media_type(row.path)
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    wanted = request.headers.get("range")
    if_range = request.headers.get("if-range")
    try:
        part = parse_range(wanted, size) if (if_range is None or if_range == etag) else None
    except Unsatisfiable:
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    start, length, status = (0, size, 200) if part is None else (part.start, part.length, 206)
    headers["Content-Length"] = str(length)
    if part is not None:
        headers["Content-Range"] = f"bytes {part.start}-{part.end}/{size}"
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=kind)
    with store_call("opening the file"):
        handle = scope.store.open_object(served)
    return StreamingResponse(read_chunks(handle, start, length), status_code=status, headers=headers,
                             media_type=kind)


def signed_copy(scope, sha256: str, version: int | None) -> tuple[str, int] | None:
    """(sha256, size) of the signed copy to serve for this content, if one was made."""
    of_version = [SignedFile.version_id == version] if version is not None else []
    row = scope.session.execute(
        select(SignedFile.sha256, SignedFile.size).join(Version, Version.id == SignedFile.version_id)
        .where(SignedFile.source_sha256 == sha256, Version.project_id == scope.project_id, *of_version)
        .order_by(SignedFile.version_id, SignedFile.path).limit(1)
    ).first()
    return (row.sha256, row.size) if row else None


def _ascii_name(path: str) -> str:
    base = path.rsplit("/", 1)[-1]
    return "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in base)
