"""Request and response bodies: typed pydantic models, which are also the OpenAPI schema."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

T = TypeVar("T")

# Text written to the database: printable (new lines and tabs allowed), no NUL, bounded.
NOTE_MAX = 10_000


def check_text(value: str, what: str) -> str:
    if any(ord(c) < 32 and c not in "\n\t\r" for c in value) or "\x7f" in value:
        raise ValueError(f"{what} must not contain control characters")
    return value


class Page(BaseModel, Generic[T]):
    """One page of a listing: `items`, how many match in all (`total`), and where this page starts."""

    items: list[T]
    total: int
    limit: int
    offset: int


class ProjectOut(BaseModel):
    id: int
    code: str
    name: str
    fps: str = Field(description="Exact frame rate, e.g. 24000/1001")
    width: int
    height: int
    stale_policy: str
    created_at: datetime
    adapter_approval: str = Field(default="review", description="How regeneration approves retrained adapters: "
                                  "'review' (their shots wait) or 'auto'")


class ProjectPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stale_policy: Literal["approved", "latest"] | None = None
    adapter_approval: Literal["review", "auto"] | None = None


class SequenceOut(BaseModel):
    id: int
    code: str
    shot_count: int


class ShotOut(BaseModel):
    id: int
    code: str
    sequence: str | None
    cut_in: int
    cut_out: int = Field(description="Inclusive")
    handles: int
    editorial_order: int | None


class AssetOut(BaseModel):
    id: int
    name: str
    kind: str
    shot: str | None
    latest_number: int
    approved_number: int | None


class ShotDetail(ShotOut):
    assets: list[AssetOut]


class FileOut(BaseModel):
    path: str
    sha256: str
    size: int
    url: str = Field(description="Where the API serves its content")


class InputOut(BaseModel):
    role: str
    ref: str | None = Field(description="None when the input belongs to another project")
    version_id: int | None


class VersionOut(BaseModel):
    id: int
    ref: str
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
    files: list[FileOut]
    inputs: list[InputOut]
    reused: bool = Field(default=False, description="True when a publish returned the asset's latest version, "
                                                    "which had the same files, inputs, recipe and metadata")


class LineageEdgeOut(BaseModel):
    version: str
    input: str
    role: str
    depth: int
    version_id: int
    input_id: int
    status: str


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    body: str = Field(min_length=1, max_length=NOTE_MAX)

    @field_validator("body")
    @classmethod
    def _printable(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a note needs some text")
        return check_text(value, "a note")


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(default=None, max_length=NOTE_MAX)

    @field_validator("note")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        return None if value is None or not value.strip() else check_text(value, "a note")


class RejectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(min_length=1, max_length=NOTE_MAX, description="What is wrong (required)")

    @field_validator("note")
    @classmethod
    def _printable(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a rejection needs a note saying what is wrong")
        return check_text(value, "a note")


class NoteOut(BaseModel):
    id: int
    version: str
    author: str
    body: str
    status_change: str | None
    created_at: datetime


class StaleReasonOut(BaseModel):
    input: str = Field(description="The root of the chain: a superseded input, or a version short of its cut")
    role: str
    superseded_by: str | None = Field(description="The superseding version; for cause 'cut', what the cut needs")
    path: list[str] = Field(description="From the stale version back to the root")
    cause: str = Field(default="superseded", description="'superseded' (lineage) or 'cut' (frames missing)")
    cut: dict[str, Any] | None = None


class StaleOut(BaseModel):
    id: int
    ref: str
    asset: str
    kind: str
    number: int
    status: str
    reason: StaleReasonOut
    awaiting_review: str | None = Field(default=None, description="A fresh newer version of the asset awaiting "
                                        "review (regeneration leaves the asset alone until it is approved)")


class SwapOut(BaseModel):
    role: str
    old: str
    new: str = Field(description="A version ref, or 'new version of ASSET' made by the plan item `from_item`")
    from_item: str | None = None


class PlanItemOut(BaseModel):
    key: str = Field(description="What the item makes: the version it replaces and the exact upstream it uses")
    action: Literal["retrain", "render", "manual"]
    asset: str
    kind: str
    version: str = Field(description="The stale version to remake")
    reason: str
    path: list[str]
    swaps: list[SwapOut]
    waits_for: list[str] = Field(description="Keys of the plan items it needs first")
    blocked: str | None = Field(description="Why it cannot run now")
    shot: str | None
    sequence: str | None
    editorial_order: int | None
    continuity: str
    frames: list[int] | None


class RegenerationOut(BaseModel):
    batch: str
    plan: list[PlanItemOut]
    jobs: list[int] = Field(description="The jobs this request wrote")
    in_flight: dict[str, int] = Field(description="Plan items already in flight from an earlier request: their jobs")
    skipped: list[str] = Field(description="Plan items not run: made by people, or blocked")


class EventOut(BaseModel):
    id: int
    kind: str
    project: str
    version: str | None
    version_id: int | None
    actor: str
    payload: dict[str, Any]
    created_at: datetime


class EventPage(BaseModel):
    items: list[EventOut]
    next_after: int = Field(description="Pass as `after` for the next page (the last id seen)")


class ContactSheetItem(BaseModel):
    shot: ShotOut
    asset: str | None = Field(description="The shot's render shown (shot_render first, '.../main' first)")
    version_id: int | None
    number: int | None
    status: str | None
    approved_number: int | None
    stale: bool
    stale_reason: str | None
    thumbnail: str | None = Field(description="Media URL of the thumbnail; None: show a placeholder")


class TokenInfo(BaseModel):
    project: str
    role: str
    name: str


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(max_length=2000, description="http(s) URL that receives POSTed events")
    event_kinds: list[str] = Field(default_factory=list, max_length=32,
                                   description="Event kinds to deliver; empty: all of them")


class SubscriberOut(BaseModel):
    id: int
    url: str
    event_kinds: list[str]
    active: bool
    created_by: str
    created_at: datetime


class SubscriberCreated(SubscriberOut):
    secret: str = Field(description="Signing secret, shown only now: verify X-Backlot-Signature with it")


class AttemptOut(BaseModel):
    number: int
    started_at: datetime
    duration_ms: int
    status_code: int | None
    error: str | None


class DeliveryOut(BaseModel):
    id: int
    subscriber_id: int
    event_id: int
    event_kind: str
    state: str
    attempts: int
    next_attempt_at: datetime
    last_status: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    log: list[AttemptOut]
