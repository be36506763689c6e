"""`backlot kitsu sync`: push previews, pull reviews, and report what happened.

Every remote step is committed here as soon as it happened, so when Kitsu goes away the
sync stops with a clear error and the next one carries on where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from sqlalchemy.orm import Session

from backlot.integrations.kitsu.client import Kitsu, KitsuError, KitsuUnreachable
from backlot.integrations.kitsu.links import get_link, load_credentials
from backlot.integrations.kitsu.pull import PullResult, pull_task, review_tasks
from backlot.integrations.kitsu.push import EntityMap, PushItem, plan_push, push_version

Progress = Callable[[str, int, int, str], None]  # (stage, done, total, label)


@dataclass
class SyncReport:
    project: str
    dry_run: bool
    to_push: list[PushItem] = field(default_factory=list)
    pushed: list[dict] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    pulled: PullResult = field(default_factory=PullResult)

    def to_dict(self) -> dict:
        return {"project": self.project, "dry_run": self.dry_run,
                "to_push": [item.__dict__ for item in self.to_push], "pushed": self.pushed,
                "failures": self.failures, "notes": self.pulled.notes, "statuses": self.pulled.statuses}


def sync_project(project: str, *, push: bool = True, pull: bool = True, versions: Sequence[str] = (),
                 create_missing: bool = False, dry_run: bool = False, progress: Progress | None = None) -> SyncReport:
    """Push (the given versions, or every shot's newest render not yet in Kitsu) and pull.

    Runs in its own session, committing after each remote step (see the module's doc)."""
    from sqlalchemy.exc import DBAPIError

    from backlot.db.engine import get_engine, translate_db_error

    with Session(get_engine(), expire_on_commit=False) as session:
        try:
            return _sync(session, project, push, pull, versions, create_missing, dry_run, progress)
        except DBAPIError as exc:
            raise translate_db_error(exc) from exc


def _sync(session: Session, project: str, push: bool, pull: bool, versions: Sequence[str], create_missing: bool,
          dry_run: bool, progress: Progress | None) -> SyncReport:
    link = get_link(session, project)
    kitsu = Kitsu(link.url, load_credentials(link), link.events_url)
    report = SyncReport(project, dry_run)
    tick = progress or (lambda *_: None)
    if push:
        report.to_push = plan_push(session, project, versions)
        if not dry_run:
            _push_all(session, kitsu, link, report, create_missing, tick)
    if pull:
        tasks = review_tasks(session, project)
        for done, (task_id, uploads) in enumerate(tasks.items(), 1):
            pull_task(session, kitsu, link, task_id, uploads, report.pulled, dry_run=dry_run)
            if not dry_run:
                session.commit()
            tick("pull", done, len(tasks), task_id)
    session.rollback()  # a dry run leaves nothing behind
    return report


def _push_all(session: Session, kitsu: Kitsu, link, report: SyncReport, create_missing: bool,
              tick: Progress) -> None:
    entities = EntityMap(session, kitsu, link, create_missing, session.commit)
    total = len(report.to_push)
    for done, item in enumerate(report.to_push, 1):
        try:
            report.pushed.append(push_version(session, kitsu, link, item, entities, session.commit))
        except KitsuUnreachable as exc:
            session.rollback()
            raise KitsuError(f"{exc} ({len(report.pushed)} of {total} previews were sent before it went away; "
                             "what was sent is recorded, nothing will be sent twice)") from None
        except KitsuError as exc:
            session.rollback()
            report.failures.append(f"{item.ref}: {exc}")
        tick("push", done, total, item.ref)
