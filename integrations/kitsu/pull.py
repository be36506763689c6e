"""Pull: Kitsu comments on Backlot's previews come back as notes (author and time kept), and
review statuses, through the link's mapping, as version statuses — so an approval in Kitsu
feeds staleness and regeneration here.

A comment belongs to the latest Backlot preview posted on its task before it. Each comment
is brought back once (remembered by its Kitsu id); a version takes the status of its newest
mapped comment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from backlot.integrations.kitsu.client import Kitsu
from backlot.integrations.kitsu.links import LinkRecord
from backlot.db.models import Note, VersionStatus
from backlot.db.review_sync import ReviewComment, ReviewUpload
from backlot.tracker import set_status
from backlot.tracker.versions import load_version_records
from backlot.tracker.projects import find_project


@dataclass
class PullResult:
    notes: list[dict] = field(default_factory=list)  # new comments, as notes
    statuses: list[dict] = field(default_factory=list)  # {"version", "from", "to", "by"}


def review_tasks(session: Session, project: str) -> dict[str, list[tuple[str, int]]]:
    """Per Kitsu task: Backlot's comments on it and their versions."""
    rows = session.execute(select(ReviewUpload.task_id, ReviewUpload.comment_id, ReviewUpload.version_id)
                           .where(ReviewUpload.project_id == find_project(session, project).id))
    tasks: dict[str, list[tuple[str, int]]] = {}
    for task_id, comment_id, version_id in rows:
        tasks.setdefault(task_id, []).append((comment_id, version_id))
    return tasks


def pull_task(session: Session, kitsu: Kitsu, link: LinkRecord, task_id: str, uploads: list[tuple[str, int]],
              result: PullResult, *, dry_run: bool = False) -> None:
    ours = dict(uploads)
    seen = set(session.scalars(select(ReviewComment.external_id).where(ReviewComment.version_id.in_(ours.values()))))
    current, newest_status = None, {}
    for comment in sorted(kitsu.comments(task_id), key=lambda c: c["created_at"]):
        if comment["id"] in ours:
            current = ours[comment["id"]]
            continue
        if current is None or comment["id"] in seen:
            continue
        short = (comment.get("task_status") or {}).get("short_name")
        mapped = link.status_map.get(short)
        note = _note(comment, current, mapped)
        result.notes.append({"version_id": current, "author": note.author, "at": note.created_at, "text": note.body,
                             "kitsu_status": short})
        if not dry_run:
            session.add(note)
            session.flush()
            session.add(ReviewComment(external_id=comment["id"], version_id=current, note_id=note.id, status=short))
        if mapped:
            newest_status[current] = (mapped, note.author)
    _apply_statuses(session, newest_status, result, dry_run)


def _note(comment: dict, version_id: int, mapped: str | None) -> Note:
    person = comment.get("person") or {}
    author = person.get("full_name") or person.get("email") or comment.get("person_id") or "kitsu"
    status_name = (comment.get("task_status") or {}).get("name", "")
    body = (comment.get("text") or "").strip() or f"status set to {status_name} in Kitsu"
    at = datetime.fromisoformat(comment["created_at"])
    at = at if at.tzinfo else at.replace(tzinfo=timezone.utc)  # Zou stores UTC without a zone
    return Note(version_id=version_id, author=f"{author} (Kitsu)"[:100], body=body, created_at=at,
                status_change=VersionStatus(mapped) if mapped else None)


def _apply_statuses(session: Session, newest: dict[int, tuple[str, str]], result: PullResult, dry_run: bool) -> None:
    if not newest:
        return
    records = {r.id: r for r in load_version_records(session, list(newest))}
    for version_id, (status, author) in newest.items():
        before = records[version_id].status
        if before == status:
            continue
        result.statuses.append({"version": records[version_id].ref, "from": before, "to": status, "by": author})
        if not dry_run:
            set_status(session, version_id, status, actor=f"kitsu:{author}"[:100])



