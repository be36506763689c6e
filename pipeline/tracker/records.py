"""Typed records returned by the tracker API: plain frozen data, safe outside a session."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from fractions import Fraction
from typing import Any


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Fraction):
        return f"{value.numerator}/{value.denominator}"
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


class _Record:
    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))  # type: ignore[call-overload]


@dataclass(frozen=True)
class ProjectRecord(_Record):
    id: int
    code: str
    name: str
    fps: Fraction
    width: int
    height: int
    stale_policy: str
    created_at: datetime
    adapter_approval: str = "review"  # how regenerated adapters are approved: "review" or "auto"


@dataclass(frozen=True)
class SequenceRecord(_Record):
    id: int
    project: str
    code: str


@dataclass(frozen=True)
class ShotRecord(_Record):
    id: int
    project: str
    code: str
    sequence: str | None
    cut_in: int
    cut_out: int  # inclusive
    handles: int
    editorial_order: int | None

    @property
    def frame_count(self) -> int:
        return self.cut_out - self.cut_in + 1


@dataclass(frozen=True)
class AssetRecord(_Record):
    id: int
    project: str
    name: str
    kind: str
    shot: str | None
    latest_number: int
    approved_number: int | None


@dataclass(frozen=True)
class FileRecord(_Record):
    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class InputRecord(_Record):
    role: str
    ref: str
    version_id: int


@dataclass(frozen=True)
class VersionRecord(_Record):
    id: int
    ref: str
    project: str
    asset: str
    kind: str
    number: int
    status: str
    content_hash: str
    media_type: str
    created_by: str
    created_at: datetime
    metadata: dict[str, Any]
    recipe: dict[str, Any] | None
    recipe_sha256: str | None
    files: tuple[FileRecord, ...] = field(default_factory=tuple)
    inputs: tuple[InputRecord, ...] = field(default_factory=tuple)
    # True when publish_version returned the asset's latest version instead of writing a new
    # one (same files, inputs, recipe, metadata and media type); False everywhere else.
    reused: bool = False


@dataclass(frozen=True)
class NoteRecord(_Record):
    id: int
    version: str
    author: str
    body: str
    status_change: str | None
    created_at: datetime
