"""Store hygiene: remove what no version references (`gc`), verify what they do (`check`).

References come from the database: every version's files (`version_files`), the signed
copies of generated files (`signed_files`) and the original files of imported cuts
(`cut_revisions`); version folders are referenced by versions' content hashes and cuts'
stored hashes.

gc never removes an object younger than the grace period. A publish writes its objects
before its transaction commits, and reusing an object that already exists refreshes its
time (Store._put_object), so an in-flight publish only ever depends on young objects. The
store is listed *before* the references are read (an object committed in between is seen
as referenced), and each candidate's age is read again right before it is removed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from backlot.db.cuts import CutRevision
from backlot.db.models import Version, VersionFile
from backlot.db.provenance import SignedFile
from backlot.errors import InvalidInputError
from backlot.storage import Store

DEFAULT_GRACE_S = 24 * 3600.0


@dataclass
class GcResult:
    removed_objects: list[str] = field(default_factory=list)  # store paths
    removed_folders: list[str] = field(default_factory=list)
    kept_young: int = 0  # unreferenced, but within the grace period
    freed_bytes: int = 0
    dry_run: bool = False


@dataclass(frozen=True)
class Problem:
    kind: str  # "missing" | "altered" | "folder missing"
    sha256: str
    refs: tuple[str, ...]  # the versions (project/asset@n), signed copies or cuts needing it
    detail: str = ""


@dataclass
class CheckResult:
    checked: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def parse_grace(text: str) -> float:
    """`24h`, `90m`, `3600s`, `2d` or plain seconds -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    value = text.strip().lower()
    scale = units.get(value[-1:], None)
    number = value[:-1] if scale else value
    try:
        seconds = float(number) * (scale or 1)
    except ValueError:
        seconds = -1
    if seconds < 0:
        raise InvalidInputError(f"grace {text!r} is not a duration: give e.g. 24h, 90m, 3600s or 2d")
    return seconds


def referenced(session: Session) -> tuple[set[str], set[str]]:
    """(object sha256s, version folder names) that something in the database refers to."""
    objects = set(session.scalars(select(VersionFile.sha256).distinct()))
    objects |= set(session.scalars(select(SignedFile.sha256).distinct()))
    objects |= set(session.scalars(select(CutRevision.file_sha256).distinct()))
    folders = set(session.scalars(select(Version.content_hash).distinct()))
    folders |= set(session.scalars(select(CutRevision.stored_hash).distinct()))
    return objects, folders


def collect_garbage(session: Session, store: Store, *, grace_s: float = DEFAULT_GRACE_S,
                    dry_run: bool = False, now: float | None = None) -> GcResult:
    """Remove unreferenced objects and version folders older than `grace_s` (and crash leftovers)."""
    objects = list(store.list_objects())  # listed first: see the module docstring
    folders = store.list_version_folders()
    # Read committed (PostgreSQL's default, and Backlot's): these queries see every reference
    # committed before they run, so also those committed while the store was being listed.
    wanted_objects, wanted_folders = referenced(session)
    result = GcResult(dry_run=dry_run)
    cutoff = (now or time.time()) - grace_s
    for obj in objects:
        if obj.sha256 in wanted_objects:
            continue
        if obj.mtime > cutoff:
            result.kept_young += 1
            continue
        if obj.sha256 is not None:
            again = store.object_info(obj.sha256)  # reused by a publish since we listed?
            if again is None or again.mtime > cutoff:
                result.kept_young += again is not None
                continue
        if not dry_run:
            store.remove_path(obj.path)
        result.removed_objects.append(obj.path)
        result.freed_bytes += obj.size
    for name, mtime in folders.items():
        if name in wanted_folders:
            continue
        if mtime > cutoff:
            result.kept_young += 1
            continue
        if not dry_run:
            store.remove_path(store.version_dir(name))
        result.removed_folders.append(store.version_dir(name))
    return result


def check_store(session: Session, store: Store, *, full: bool = True) -> CheckResult:
    """Every object something references is there (and, with `full`, hashes to its name);
    every copied version has its folder. In-place versions (files left where they were) are
    skipped: their files were never in the store."""
    from backlot.db.models import Asset, Project

    needs: dict[str, list[str]] = {}
    rows = session.execute(
        select(VersionFile.sha256, Project.name, Asset.name, Version.number, Version.content_hash, Version.meta)
        .join(Version, Version.id == VersionFile.version_id).join(Asset, Asset.id == Version.asset_id)
        .join(Project, Project.id == Version.project_id)
    ).all()
    folders: dict[str, str] = {}
    for sha, project, asset, number, content_hash, meta in rows:
        if (meta or {}).get("location"):
            continue
        ref = f"{project}/{asset}@{number}"
        needs.setdefault(sha, []).append(ref)
        folders.setdefault(content_hash, ref)
    for sha, version_id, path in session.execute(select(SignedFile.sha256, SignedFile.version_id, SignedFile.path)):
        needs.setdefault(sha, []).append(f"signed copy of {path} (version id {version_id})")
    for sha, stored, number, name in session.execute(
            select(CutRevision.file_sha256, CutRevision.stored_hash, CutRevision.number, CutRevision.name)):
        needs.setdefault(sha, []).append(f"cut revision {number} ({name})")
        folders.setdefault(stored, f"cut revision {number} ({name})")
    result = CheckResult()
    present = store.list_version_folders()
    for sha, refs in sorted(needs.items()):
        result.checked += 1
        info = store.object_info(sha)
        if info is None:
            result.problems.append(Problem("missing", sha, tuple(sorted(set(refs)))))
            continue
        if full:
            digest, _ = store.hash_object(sha)
            if digest != sha:
                result.problems.append(Problem("altered", sha, tuple(sorted(set(refs))), f"hashes to {digest}"))
    for content_hash, ref in sorted(folders.items()):
        if content_hash not in present:
            result.problems.append(Problem("folder missing", content_hash, (ref,), store.version_dir(content_hash)))
    return result
