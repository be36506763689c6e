"""Projects, sequences and shots."""

from __future__ import annotations

from fractions import Fraction

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backlot.config import load_settings
from backlot.db.models import EventKind, Project, Sequence, Shot
from backlot.errors import ConflictError, InvalidInputError, NotFoundError
from backlot.refs import check_code
from backlot.tracker.choices import parse_policy
from backlot.tracker.events import record_event
from backlot.tracker.records import ProjectRecord, SequenceRecord, ShotRecord

DEFAULT_FIRST_FRAME = 1001


def parse_fps(value: str | int | float | Fraction) -> Fraction:
    """An exact frame rate: '24', '25', '24000/1001', '23.976' (read as 24000/1001)."""
    known = {"23.976": Fraction(24000, 1001), "29.97": Fraction(30000, 1001), "59.94": Fraction(60000, 1001),
             "47.952": Fraction(48000, 1001), "119.88": Fraction(120000, 1001)}
    text = str(value).strip()
    try:
        fps = known.get(text) or Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise InvalidInputError(f"frame rate {value!r} is invalid: use e.g. 24, 25 or 24000/1001") from None
    if fps <= 0 or fps > 1000:
        raise InvalidInputError(f"frame rate {value!r} is out of range: it must be above 0 and at most 1000")
    return fps


def _project_record(p: Project) -> ProjectRecord:
    return ProjectRecord(p.id, p.code, p.name, Fraction(p.fps_num, p.fps_den), p.width, p.height,
                         p.stale_policy.value, p.created_at, p.adapter_approval)


def find_project(session: Session, code: str) -> Project:
    """The project whose code is `code` in any case (codes are unique without regard to case)."""
    project = session.scalar(select(Project).where(func.lower(Project.code) == code.lower()))
    if project is None:
        raise NotFoundError(f"no project {code!r}: list them with `backlot project list`")
    return project


def create_project(session: Session, code: str, *, name: str | None = None, fps: str | Fraction = "24",
                   width: int = 1920, height: int = 1080, stale_policy: str = "approved",
                   actor: str | None = None) -> ProjectRecord:
    check_code(code, "project")
    rate = parse_fps(fps)
    if width <= 0 or height <= 0:
        raise InvalidInputError(f"resolution {width}x{height} is invalid: both must be positive")
    policy = parse_policy(stale_policy)
    existing = session.scalar(select(Project.code).where(func.lower(Project.code) == code.lower()))
    if existing == code:
        raise ConflictError(f"project {code!r} already exists")
    if existing is not None:
        raise ConflictError(f"project {code!r} clashes with the existing project {existing!r}: codes are unique "
                            f"without regard to case (refer to it as {existing!r}, or choose another code)")
    project = Project(code=code, name=name or code, fps_num=rate.numerator, fps_den=rate.denominator,
                      width=width, height=height, stale_policy=policy)
    session.add(project)
    session.flush()
    record_event(session, project.id, EventKind.project_created, _actor(actor), code=code)
    session.flush()
    return _project_record(project)


def get_project(session: Session, code: str) -> ProjectRecord:
    return _project_record(find_project(session, code))


def list_projects(session: Session) -> list[ProjectRecord]:
    return [_project_record(p) for p in session.scalars(select(Project).order_by(Project.code))]


def set_stale_policy(session: Session, code: str, policy: str, actor: str | None = None) -> ProjectRecord:
    """Switch between 'approved' and 'latest' supersession; the database recomputes its cache."""
    project = find_project(session, code)
    project.stale_policy = parse_policy(policy)
    session.flush()
    record_event(session, project.id, EventKind.project_updated, _actor(actor), stale_policy=policy)
    session.flush()
    return _project_record(project)


ADAPTER_APPROVAL = ("review", "auto")


def set_adapter_approval(session: Session, code: str, mode: str, actor: str | None = None) -> ProjectRecord:
    """How regeneration approves the adapters it retrains: "review" (the shots that use one wait
    until a person approves it) or "auto" (approved as soon as it is trained)."""
    if mode not in ADAPTER_APPROVAL:
        raise InvalidInputError(f"adapter approval {mode!r} is not one of: {', '.join(ADAPTER_APPROVAL)}")
    project = find_project(session, code)
    project.adapter_approval = mode
    session.flush()
    record_event(session, project.id, EventKind.project_updated, _actor(actor), adapter_approval=mode)
    session.flush()
    return _project_record(project)


def _actor(actor: str | None) -> str:
    return actor or load_settings().user


# -- sequences -----------------------------------------------------------------------------


def create_sequence(session: Session, project: str, code: str, actor: str | None = None) -> SequenceRecord:
    proj = find_project(session, project)
    check_code(code, "sequence")
    if session.scalar(select(Sequence.id).where(Sequence.project_id == proj.id, Sequence.code == code)):
        raise ConflictError(f"sequence {code!r} already exists in {project}")
    return SequenceRecord(_add_sequence(session, proj, code, actor).id, project, code)


def _add_sequence(session: Session, proj: Project, code: str, actor: str | None) -> Sequence:
    seq = Sequence(project_id=proj.id, code=code)
    session.add(seq)
    session.flush()
    record_event(session, proj.id, EventKind.sequence_created, _actor(actor), code=code)
    return seq


def ensure_sequence(session: Session, proj: Project, code: str, actor: str | None = None) -> Sequence:
    check_code(code, "sequence")
    seq = session.scalar(select(Sequence).where(Sequence.project_id == proj.id, Sequence.code == code))
    return seq or _add_sequence(session, proj, code, actor)


def list_sequences(session: Session, project: str) -> list[SequenceRecord]:
    proj = find_project(session, project)
    rows = session.scalars(select(Sequence).where(Sequence.project_id == proj.id).order_by(Sequence.code))
    return [SequenceRecord(s.id, project, s.code) for s in rows]


# -- shots ---------------------------------------------------------------------------------


def create_shot(session: Session, project: str, code: str, *, sequence: str | None = None, frames: int = 100,
                first_frame: int = DEFAULT_FIRST_FRAME, handles: int = 0, actor: str | None = None) -> ShotRecord:
    """A shot of `frames` frames starting at `first_frame` (cut_out is inclusive)."""
    proj = find_project(session, project)
    check_code(code, "shot")
    if frames < 1:
        raise InvalidInputError(f"shot {code}: frame count {frames} must be at least 1")
    if handles < 0:
        raise InvalidInputError(f"shot {code}: handles {handles} must not be negative")
    if session.scalar(select(Shot.id).where(Shot.project_id == proj.id, Shot.code == code)):
        raise ConflictError(f"shot {code!r} already exists in {project}")
    seq = ensure_sequence(session, proj, sequence, actor) if sequence else None
    order = session.scalar(select(func.coalesce(func.max(Shot.editorial_order), 0)).where(Shot.project_id == proj.id))
    shot = Shot(project_id=proj.id, code=code, sequence_id=seq.id if seq else None, cut_in=first_frame,
                cut_out=first_frame + frames - 1, handles=handles, editorial_order=order + 1)
    session.add(shot)
    session.flush()
    record_event(session, proj.id, EventKind.shot_created, _actor(actor), code=code,
                 sequence=sequence, cut_in=shot.cut_in, cut_out=shot.cut_out)
    session.flush()
    return _shot_record(shot, project, sequence)


def find_shot(session: Session, proj: Project, code: str) -> Shot:
    shot = session.scalar(select(Shot).where(Shot.project_id == proj.id, Shot.code == code))
    if shot is None:
        raise NotFoundError(f"no shot {code!r} in project {proj.code}: create it with `backlot shot create`")
    return shot


def get_shot(session: Session, project: str, code: str) -> ShotRecord:
    proj = find_project(session, project)
    shot = find_shot(session, proj, code)
    seq = session.get(Sequence, shot.sequence_id) if shot.sequence_id else None
    return _shot_record(shot, project, seq.code if seq else None)


def list_shots(session: Session, project: str, sequence: str | None = None) -> list[ShotRecord]:
    """Shots in editorial order."""
    proj = find_project(session, project)
    stmt = (select(Shot, Sequence.code).outerjoin(Sequence, Sequence.id == Shot.sequence_id)
            .where(Shot.project_id == proj.id).order_by(Shot.editorial_order.nulls_last(), Shot.code))
    if sequence is not None:
        stmt = stmt.where(Sequence.code == sequence)
    return [_shot_record(shot, project, seq_code) for shot, seq_code in session.execute(stmt)]


def _shot_record(shot: Shot, project: str, sequence: str | None) -> ShotRecord:
    return ShotRecord(shot.id, project, shot.code, sequence, shot.cut_in, shot.cut_out, shot.handles,
                      shot.editorial_order)
