"""Push: shot renders become preview revisions on their shot's task in Kitsu.

Each upload is two remote steps, each recorded as soon as it exists remotely: the comment
(status "Waiting For Approval", the version's reference and a lineage summary), then the
movie attached to it. A sync that stops between them attaches the movie to the same comment
next time; one that stops before the comment was recorded finds it by its reference line.
So a version is never uploaded twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
import tempfile
from pathlib import Path
from typing import Callable, Sequence

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from backlot.integrations.kitsu.client import Kitsu, KitsuError
from backlot.integrations.kitsu.links import PUSH_STATUS, LinkRecord
from backlot.db.models import Asset, AssetKind, Sequence as Sequence_, Shot, Version
from backlot.db.review_sync import ReviewEntity, ReviewUpload
from backlot.errors import InvalidInputError
from backlot.generation.media import review_copy
from backlot.provenance.credentials import sign_for_delivery
from backlot.generation.models import version_folder
from backlot.lineage import get_inputs
from backlot.lineage.graph import ALL_ROLES
from backlot.tracker import VersionRecord, get_shot, get_version, set_status
from backlot.tracker.versions import load_version_records
from backlot.tracker.projects import find_project

PREVIEW = "preview.mp4"
MARKER = "backlot version:"  # the first line of every comment Backlot posts


@dataclass(frozen=True)
class PushItem:
    ref: str
    shot: str
    sequence: str | None
    action: str  # "upload", or "attach" (comment made earlier, movie still to send)


def plan_push(session: Session, project: str, refs: Sequence[str] = ()) -> list[PushItem]:
    """What a push would send: the given versions, or each shot render's latest version not yet in Kitsu."""
    versions = [get_version(session, r) for r in refs] if refs else _latest_renders(session, project)
    done = _upload_state(session, [v.id for v in versions])
    shots = _shots_of(session, [v.id for v in versions])
    items = []
    for version in versions:
        if version.project != project:
            raise InvalidInputError(f"{version.ref} belongs to {version.project}, not {project}")
        if version.kind != AssetKind.shot_render.value or version.id not in shots:
            raise InvalidInputError(f"{version.ref} is a {version.kind}; only shot renders go to Kitsu for review")
        if done.get(version.id) == "uploaded":
            continue
        shot, sequence = shots[version.id]
        items.append(PushItem(version.ref, shot, sequence, "attach" if version.id in done else "upload"))
    return items


def _shots_of(session: Session, ids: Sequence[int]) -> dict[int, tuple[str, str | None]]:
    rows = session.execute(select(Version.id, Shot.code, Sequence_.code)
                           .join(Asset, Asset.id == Version.asset_id).join(Shot, Shot.id == Asset.shot_id)
                           .outerjoin(Sequence_, Sequence_.id == Shot.sequence_id).where(Version.id.in_(ids)))
    return {vid: (shot, sequence) for vid, shot, sequence in rows}


def _latest_renders(session: Session, project: str) -> list[VersionRecord]:
    proj = find_project(session, project)
    latest = (select(func.max(Version.id)).join(Asset, Asset.id == Version.asset_id)
              .where(Asset.project_id == proj.id, Asset.kind == AssetKind.shot_render).group_by(Asset.id))
    return load_version_records(session, list(session.scalars(latest)))


def _upload_state(session: Session, ids: Sequence[int]) -> dict[int, str]:
    rows = session.execute(select(ReviewUpload.version_id, ReviewUpload.preview_id)
                           .where(ReviewUpload.version_id.in_(ids)))
    return {vid: "uploaded" if preview else "commented" for vid, preview in rows}


def push_version(session: Session, kitsu: Kitsu, link: LinkRecord, item: PushItem, entities: "EntityMap",
                 commit: Callable[[], None]) -> dict:
    """Send one version; `commit` makes each recorded step durable before the next remote call."""
    version = get_version(session, item.ref)
    movie = preview_path(version)
    if not movie.is_file():
        raise KitsuError(f"{version.ref} has no {PREVIEW} to review; render it again with a preview")
    task_id = entities.task(item.shot, item.sequence)
    upload = session.get(ReviewUpload, version.id)
    send = kitsu.add_preview if upload is None else kitsu.resume_preview
    if upload is None:
        comment = _find_marked_comment(kitsu, task_id, version.ref) or kitsu.add_comment(
            task_id, entities.status(PUSH_STATUS), review_comment(session, version))
        upload = ReviewUpload(version_id=version.id, project_id=entities.project_id, task_id=task_id,
                              comment_id=comment["id"])
        session.add(upload)
        commit()
    with tempfile.TemporaryDirectory(prefix="backlot-kitsu-") as tmp:
        copy = review_copy(movie, Path(tmp) / f"{item.shot}.unsigned.mp4")
        # What Kitsu receives carries the version's Content Credentials (docs/provenance.md).
        copy = sign_for_delivery(session, version, copy, Path(tmp) / f"{item.shot}.mp4", f"review/{PREVIEW}")
        preview = send(task_id, upload.comment_id, copy)
    upload.preview_id, upload.revision = preview["id"], preview.get("revision")
    upload.uploaded_at = datetime.now(timezone.utc)
    if version.status == "wip":
        set_status(session, version.id, "review", actor="kitsu")
    commit()
    return {"version": version.ref, "task": task_id, "preview": preview["id"], "revision": preview.get("revision"),
            "processing": preview.get("status")}


def review_comment(session: Session, version: VersionRecord) -> str:
    """The comment posted with a preview: the reference first (how Backlot finds it again)."""
    lines = [f"{MARKER} {version.ref}", f"made {version.created_at:%Y-%m-%d %H:%M} by {version.created_by}"]
    for edge in get_inputs(session, version.id, roles=ALL_ROLES):  # regenerated_from too: "a remake of @1"
        lines.append(f"- {edge.role}: {edge.input}")
    return "\n".join(lines)


def _find_marked_comment(kitsu: Kitsu, task_id: str, ref: str) -> dict | None:
    first_line = f"{MARKER} {ref}"
    return next((c for c in kitsu.comments(task_id) if (c.get("text") or "").split("\n", 1)[0] == first_line), None)


class EntityMap:
    """Kitsu ids of the project's sequences, shots and tasks; found, created if allowed, remembered."""

    def __init__(self, session: Session, kitsu: Kitsu, link: LinkRecord, create_missing: bool,
                 commit: Callable[[], None]):
        self.session, self.kitsu, self.link = session, kitsu, link
        self.create_missing, self.commit = create_missing, commit
        self.project_id = find_project(session, link.project).id
        self._ids = {(k, n): e for k, n, e in session.execute(
            select(ReviewEntity.kind, ReviewEntity.name, ReviewEntity.external_id)
            .where(ReviewEntity.project_id == self.project_id))}
        self._statuses: dict[str, dict] | None = None
        self._task_type: dict | None = None

    def status(self, short_name: str) -> dict:
        if self._statuses is None:
            self._statuses = self.kitsu.task_statuses()
        if short_name not in self._statuses:
            raise KitsuError(f"Kitsu has no task status {short_name!r}")
        return self._statuses[short_name]

    def task(self, shot: str, sequence: str | None) -> str:
        key = f"{shot}/{self.link.task_type}"
        if ("task", key) not in self._ids:
            if self._task_type is None:
                self._task_type = self.kitsu.ensure_task_type(self.link.production_id, self.link.task_type)
            self._remember("task", key, self.kitsu.ensure_task(self.link.production_id, self.shot(shot, sequence), self._task_type)["id"])
        return self._ids[("task", key)]

    def shot(self, shot: str, sequence: str | None) -> str:
        if ("shot", shot) not in self._ids:
            parent = self.sequence(sequence or "main")
            found = self.kitsu.find_shot(parent, shot)
            if found is None:
                self._refuse_missing("shot", shot)
                record = get_shot(self.session, self.link.project, shot)
                found = self.kitsu.create_shot(self.link.production_id, parent, shot, record.cut_in, record.cut_out)
            self._remember("shot", shot, found["id"])
        return self._ids[("shot", shot)]

    def sequence(self, name: str) -> str:
        if ("sequence", name) not in self._ids:
            found = self.kitsu.find_sequence(self.link.production_id, name)
            if found is None:
                self._refuse_missing("sequence", name)
                found = self.kitsu.create_sequence(self.link.production_id, name)
            self._remember("sequence", name, found["id"])
        return self._ids[("sequence", name)]

    def _refuse_missing(self, kind: str, name: str) -> None:
        if not self.create_missing:
            raise KitsuError(f"Kitsu production {self.link.production_name!r} has no {kind} {name!r}: "
                             "create it in Kitsu, or sync with --create-missing")

    def _remember(self, kind: str, name: str, external_id: str) -> None:
        self.session.execute(insert(ReviewEntity).values(project_id=self.project_id, kind=kind, name=name,
                                                         external_id=external_id)
                             .on_conflict_do_update(index_elements=["project_id", "kind", "name"],
                                                    set_={"external_id": external_id}))
        self.commit()
        self._ids[(kind, name)] = external_id


def preview_path(version: VersionRecord) -> Path:
    return version_folder(version) / PREVIEW
