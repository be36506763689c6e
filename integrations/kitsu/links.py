"""The link between a Backlot project and a Kitsu production, and its credentials.

The link (URL, production, task type, status mapping) is in the database; the secret (a
bot's token or a password) is in `BACKLOT_HOME/kitsu/PROJECT.json`, readable by its owner
only, or in BACKLOT_KITSU_SECRET, which wins.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from backlot.integrations.kitsu.client import Credentials, Kitsu, KitsuError
from backlot.config import load_settings
from backlot.db.review_sync import ReviewLink
from backlot.errors import InvalidInputError, NotFoundError
from backlot.tracker import get_project
from backlot.tracker.choices import parse_status
from backlot.tracker.projects import find_project

SYSTEM = "kitsu"
PUSH_STATUS = "wfa"  # Kitsu's "Waiting For Approval": what a new preview asks for
DEFAULT_STATUS_MAP = {"approved": "approved", "done": "approved", "retake": "rejected", "rejected": "rejected",
                      "wfa": "review"}


@dataclass(frozen=True)
class LinkRecord:
    project: str
    url: str
    production_id: str
    production_name: str
    task_type: str
    auth: str
    login: str | None
    status_map: dict[str, str] = field(default_factory=dict)
    events_url: str | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def secret_path(project: str) -> Path:
    return load_settings().home / "kitsu" / f"{project}.json"


def save_credentials(project: str, credentials: Credentials) -> None:
    path = secret_path(project)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"auth": credentials.auth, "login": credentials.login, "secret": credentials.secret}, handle)
    temporary.replace(path)


def load_credentials(link: LinkRecord) -> Credentials:
    if secret := os.environ.get("BACKLOT_KITSU_SECRET"):
        return Credentials(link.auth, secret, link.login)
    path = secret_path(link.project)
    if not path.exists():
        raise KitsuError(f"no Kitsu credentials for {link.project} here ({path}): run `backlot kitsu link` "
                         "again on this machine, or set BACKLOT_KITSU_SECRET")
    stored = json.loads(path.read_text())
    return Credentials(stored["auth"], stored["secret"], stored.get("login"))


def check_status_map(mapping: dict[str, str], known: set[str] | None = None) -> dict[str, str]:
    checked = {}
    for kitsu_status, backlot_status in mapping.items():
        if known is not None and kitsu_status not in known:
            raise InvalidInputError(f"status map: Kitsu has no status {kitsu_status!r} "
                                    f"(its short names: {', '.join(sorted(known))})")
        checked[kitsu_status] = parse_status(backlot_status).value
    return checked


def link_project(session: Session, project: str, url: str, credentials: Credentials, *,
                 production: str | None = None, task_type: str = "Animation", create: bool = False,
                 status_map: dict[str, str] | None = None, events_url: str | None = None) -> LinkRecord:
    """Link `project` to a Kitsu production (created when `create`); keeps the credentials."""
    proj = find_project(session, project)
    record = get_project(session, project)
    name = production or record.name or project
    mapping = check_status_map(status_map if status_map is not None else DEFAULT_STATUS_MAP)
    kitsu = Kitsu(url, credentials)
    check_status_map(mapping, set(kitsu.task_statuses()))
    found = kitsu.find_production(name)
    if found is None and not create:
        raise NotFoundError(f"Kitsu has no production {name!r}: create it there, give --production, "
                            "or pass --create to let Backlot create it")
    found = found or kitsu.create_production(name, f"{float(record.fps):.3f}".rstrip("0").rstrip("."))
    kitsu.ensure_task_type(found, task_type)
    values = dict(system=SYSTEM, url=kitsu.url, production_id=found["id"], production_name=found["name"],
                  task_type=task_type, auth=credentials.auth, login=credentials.login, status_map=mapping,
                  events_url=events_url)
    session.execute(insert(ReviewLink).values(project_id=proj.id, **values)
                    .on_conflict_do_update(index_elements=[ReviewLink.project_id], set_=values))
    save_credentials(project, credentials)
    return get_link(session, project)


def get_link(session: Session, project: str) -> LinkRecord:
    proj = find_project(session, project)
    row = session.scalar(select(ReviewLink).where(ReviewLink.project_id == proj.id))
    if row is None:
        raise NotFoundError(f"{project} is not linked to Kitsu: run `backlot kitsu link {project} --url ...`")
    return LinkRecord(project, row.url, row.production_id, row.production_name, row.task_type, row.auth, row.login,
                      dict(row.status_map), row.events_url)
