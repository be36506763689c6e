"""Per-project editorial settings: mapping rules, which clips make the cut, shot frames."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Sequence

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from backlot.db.cuts import CutSettings
from backlot.db.models import Project
from backlot.editorial.flatten import POLICY_ALL, POLICY_VISIBLE
from backlot.editorial.mapping import DEFAULT_RULES, MappingRule, parse_rules
from backlot.errors import InvalidInputError
from backlot.tracker.projects import DEFAULT_FIRST_FRAME, find_project
from backlot.tracker.records import _Record

DEFAULT_HANDLES = 8


@dataclass(frozen=True)
class EditorialSettings(_Record):
    rules: tuple[MappingRule, ...] = DEFAULT_RULES
    track_policy: str = POLICY_VISIBLE  # visible | all | a video track's name or 1-based number
    first_frame: int = DEFAULT_FIRST_FRAME  # shot frame of a new shot's first cut frame
    handles: int = DEFAULT_HANDLES  # handles given to shots the cut creates

    def to_dict(self) -> dict[str, Any]:
        return {"rules": [r.to_dict() for r in self.rules], "track_policy": self.track_policy,
                "first_frame": self.first_frame, "handles": self.handles}


def get_settings(session: Session, project: str | Project) -> EditorialSettings:
    proj = project if isinstance(project, Project) else find_project(session, project)
    row = session.get(CutSettings, proj.id)
    if row is None:
        return EditorialSettings()
    return EditorialSettings(parse_rules(row.rules), row.track_policy, row.first_frame, row.handles)


def set_settings(session: Session, project: str, *, rules: Sequence[dict[str, Any]] | None = None,
                 track_policy: str | None = None, first_frame: int | None = None,
                 handles: int | None = None) -> EditorialSettings:
    """Change some settings of a project (the rest keep their values); checked before writing."""
    proj = find_project(session, project)
    current = get_settings(session, proj)
    wanted = replace(
        current,
        rules=parse_rules(list(rules)) if rules is not None else current.rules,
        track_policy=check_track_policy(track_policy) if track_policy is not None else current.track_policy,
        first_frame=first_frame if first_frame is not None else current.first_frame,
        handles=check_handles(handles) if handles is not None else current.handles,
    )
    values = {"rules": [r.to_dict() for r in wanted.rules], "track_policy": wanted.track_policy,
              "first_frame": wanted.first_frame, "handles": wanted.handles}
    session.execute(pg_insert(CutSettings).values(project_id=proj.id, **values)
                    .on_conflict_do_update(index_elements=["project_id"], set_={**values, "updated_at": func.now()}))
    session.flush()
    return wanted


def check_track_policy(policy: str) -> str:
    policy = (policy or "").strip()
    if not policy:
        raise InvalidInputError(f"track policy is empty: use {POLICY_VISIBLE}, {POLICY_ALL}, "
                                "or a video track's name or number")
    return policy


def check_handles(handles: int) -> int:
    if handles < 0:
        raise InvalidInputError(f"handles {handles} must not be negative")
    return handles


def effective(settings: EditorialSettings, *, track_policy: str | None = None, first_frame: int | None = None,
              handles: int | None = None) -> EditorialSettings:
    """Settings with one import's overrides applied."""
    return replace(settings,
                   track_policy=check_track_policy(track_policy) if track_policy is not None else settings.track_policy,
                   first_frame=first_frame if first_frame is not None else settings.first_frame,
                   handles=check_handles(handles) if handles is not None else settings.handles)
