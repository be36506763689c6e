"""Rights of concept art, references and base models: owner, licence, consent to train
(docs/provenance.md). Anyone in the project reads them; a supervisor (or admin) sets them.
Rights are append-only: setting them adds the new current row, the earlier ones are history."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, field_validator

from backlot import provenance
from backlot.services.api.auth import Supervisor, Viewer
from backlot.services.api.errors import ERROR_RESPONSES
from backlot.services.api.paging import VersionId
from backlot.services.api.routes.versions import find_version
from backlot.services.api.schemas import check_text

router = APIRouter(prefix="/api/projects/{project}", responses=ERROR_RESPONSES, tags=["rights"])

TEXT_MAX = 2000


class RightsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    owner: str = Field(min_length=1, max_length=TEXT_MAX, description="Who holds the rights")
    licence: str = Field(min_length=1, max_length=TEXT_MAX, description="The licence or agreement")
    consent: Literal["yes", "no", "unknown"] = Field(description="Consent to train on it")
    note: str = Field(default="", max_length=TEXT_MAX, description="Where the consent is documented")

    @field_validator("owner", "licence", "note")
    @classmethod
    def _printable(cls, value: str) -> str:
        return check_text(value, "rights text")


class RightsOut(BaseModel):
    owner: str
    licence: str
    consent: str
    note: str
    set_by: str
    set_at: datetime


class RightsHistoryOut(BaseModel):
    version_id: int
    current: RightsOut | None = Field(description="The newest rights; null when none are recorded")
    history: list[RightsOut] = Field(description="Every record, oldest first")


@router.get("/versions/{version_id}/rights", response_model=RightsHistoryOut, tags=["rights"])
def get_rights(scope: Viewer, version_id: VersionId) -> RightsHistoryOut:
    """A version's rights and their history."""
    version = find_version(scope, version_id)
    history = [RightsOut(**r.__dict__) for r in provenance.rights_history(scope.session, version.id)]
    return RightsHistoryOut(version_id=version.id, current=history[-1] if history else None, history=history)


@router.put("/versions/{version_id}/rights", response_model=RightsOut, tags=["rights"])
def set_rights(scope: Supervisor, version_id: VersionId, body: RightsIn) -> RightsOut:
    """Record a concept-art, reference or base-model version's rights (the earlier ones stay as history)."""
    version = find_version(scope, version_id)
    rights = provenance.set_rights(scope.session, version.id, owner=body.owner, licence=body.licence,
                                   consent=body.consent, note=body.note, actor=scope.actor)
    return RightsOut(**rights.__dict__)
