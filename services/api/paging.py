"""Query parameters shared by listing routes."""

from __future__ import annotations

from typing import Annotated, Sequence, TypeVar

from fastapi import Path, Query

from backlot.refs import ASSET_RE, CODE_RE
from backlot.services.api.schemas import Page

T = TypeVar("T")

MAX_ID = 2**63 - 1
Limit = Annotated[int, Query(ge=1, le=500, description="Items per page")]
Offset = Annotated[int, Query(ge=0, le=1_000_000_000, description="Items to skip")]
CodeFilter = Annotated[str | None, Query(pattern=CODE_RE.pattern, max_length=64)]
AssetFilter = Annotated[str | None, Query(pattern=ASSET_RE.pattern, max_length=200)]
VersionId = Annotated[int, Path(ge=1, le=MAX_ID, description="Version id")]
CodePath = Annotated[str, Path(pattern=CODE_RE.pattern, max_length=64)]


def page_of(items: Sequence[T], limit: int, offset: int) -> Page[T]:
    """A page cut from a list that is already complete in memory (small answers: stale set, notes)."""
    return Page[T](items=list(items[offset:offset + limit]), total=len(items), limit=limit, offset=offset)
