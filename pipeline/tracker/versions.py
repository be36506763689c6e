"""Versions: publish (immutable, numbered by the database), look up, review statuses, notes."""

from __future__ import annotations

import hashlib
import json
import mimetypes
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from backlot.config import load_settings
from backlot.db.models import (
    Asset,
    AssetKind,
    EventKind,
    InputRole,
    Note,
    Project,
    Recipe,
    Version,
    VersionFile,
    VersionInput,
    VersionStatus,
)
from backlot.errors import InvalidInputError, NotFoundError
from backlot.refs import VersionRef, parse_version_ref
from backlot.storage import StoredFile, Store, hash_file, manifest_hash, plan_files
from backlot.tracker.assets import ensure_asset, find_asset
from backlot.tracker.choices import parse_role, parse_status
from backlot.tracker.events import record_event
from backlot.tracker.projects import _actor, find_project
from backlot.tracker.records import FileRecord, InputRecord, NoteRecord, VersionRecord

InputSpec = tuple[str | InputRole, "str | VersionRef | int"]


def canonical_recipe(recipe: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(sha256, body) of a recipe in canonical JSON: sorted keys, no spaces, UTF-8."""
    try:
        text = json.dumps(recipe, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"recipe is not plain JSON data: {exc}") from None
    return hashlib.sha256(text.encode()).hexdigest(), json.loads(text)


# -- lookups -------------------------------------------------------------------------------


def resolve_version(session: Session, ref: str | VersionRef | int) -> Version:
    """The version a reference points at (or a version id), or NotFoundError saying why."""
    if isinstance(ref, int):
        version = session.get(Version, ref)
        if version is None:
            raise NotFoundError(f"no version with id {ref}")
        return version
    parsed = ref if isinstance(ref, VersionRef) else parse_version_ref(ref)
    proj = find_project(session, parsed.project)
    asset = find_asset(session, proj, parsed.asset)
    number = {"latest": asset.latest_number, "approved": asset.approved_number}.get(parsed.selector, parsed.selector)  # type: ignore[arg-type]
    version = None
    if number:
        version = session.scalar(select(Version).where(Version.asset_id == asset.id, Version.number == number))
    if version is None:
        what = {"latest": "no versions yet", "approved": "no approved version"}.get(parsed.selector, f"no version {parsed.selector}")  # type: ignore[arg-type]
        raise NotFoundError(f"{parsed}: asset {parsed.project}/{parsed.asset} has {what} (latest is {asset.latest_number})")
    return version


def get_version(session: Session, ref: str | VersionRef | int) -> VersionRecord:
    return load_version_records(session, [resolve_version(session, ref).id])[0]


def list_versions(session: Session, project: str, asset: str) -> list[VersionRecord]:
    proj = find_project(session, project)
    asset_row = find_asset(session, proj, asset)
    ids = session.scalars(select(Version.id).where(Version.asset_id == asset_row.id).order_by(Version.number))
    return load_version_records(session, list(ids))


def load_version_records(session: Session, ids: Sequence[int]) -> list[VersionRecord]:
    """Records for many versions in four queries, whatever their number, in the order given."""
    if not ids:
        return []
    rows = session.execute(
        select(Version, Asset.name, Asset.kind, Project.code, Recipe.sha256, Recipe.body)
        .join(Asset, Asset.id == Version.asset_id).join(Project, Project.id == Version.project_id)
        .outerjoin(Recipe, Recipe.id == Version.recipe_id).where(Version.id.in_(ids))
    ).all()
    files: dict[int, list[FileRecord]] = defaultdict(list)
    for f in session.scalars(select(VersionFile).where(VersionFile.version_id.in_(ids)).order_by(VersionFile.path)):
        files[f.version_id].append(FileRecord(f.path, f.sha256, f.size))
    inputs: dict[int, list[InputRecord]] = defaultdict(list)
    for edge, ref in _input_refs(session, ids):
        inputs[edge.version_id].append(InputRecord(edge.role.value, ref, edge.input_id))
    by_id = {}
    for v, asset_name, kind, project, recipe_sha, recipe_body in rows:
        by_id[v.id] = VersionRecord(
            id=v.id, ref=f"{project}/{asset_name}@{v.number}", project=project, asset=asset_name, kind=kind.value,
            number=v.number, status=v.status.value, content_hash=v.content_hash, media_type=v.media_type,
            created_by=v.created_by, created_at=v.created_at, metadata=v.meta, recipe=recipe_body,
            recipe_sha256=recipe_sha, files=tuple(files[v.id]), inputs=tuple(inputs[v.id]))
    return [by_id[i] for i in ids if i in by_id]


def _input_refs(session: Session, ids: Sequence[int]) -> Iterable[tuple[VersionInput, str]]:
    stmt = (select(VersionInput, Project.code, Asset.name, Version.number)
            .join(Version, Version.id == VersionInput.input_id).join(Asset, Asset.id == Version.asset_id)
            .join(Project, Project.id == Version.project_id)
            .where(VersionInput.version_id.in_(ids)).order_by(VersionInput.role, VersionInput.input_id))
    for edge, project, asset, number in session.execute(stmt):
        yield edge, f"{project}/{asset}@{number}"


# -- publish -------------------------------------------------------------------------------


def publish_version(
    session: Session,
    project: str,
    asset: str,
    files: Sequence[str | Path],
    *,
    kind: str | AssetKind | None = None,
    inputs: Sequence[InputSpec] = (),
    recipe: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    status: str | VersionStatus = VersionStatus.wip,
    media_type: str | None = None,
    names: Sequence[str] | None = None,
    shot: str | None = None,
    store: Store | None = None,
    copy_files: bool = True,
    idempotency_key: str | None = None,
    actor: str | None = None,
    new_version: bool = False,
) -> VersionRecord:
    """Publish a new version of `project/asset` (created with `kind` when missing).

    Everything is checked before anything is written: files readable, inputs existing,
    roles and status valid. Files go into the content-addressed store (or, with
    `copy_files=False`, are only hashed and stay where they are: say where in `metadata`);
    the version row, its files, inputs, recipe and event are written in the caller's
    transaction. With an `idempotency_key` already used, the version that has it is returned
    and nothing new is written (a job that runs twice publishes once).

    Identical content returns the existing version: when the asset's latest version has the
    same content hash (file names, bytes), the same inputs (role and version), the same recipe,
    metadata and media type, that version is returned with `reused=True` and nothing is
    written (no row, no event, no file copied). Its status is left as it is, whatever `status`
    asks for: change it with `set_status`. `new_version=True` publishes a new number anyway.
    """
    if idempotency_key:
        done = session.scalar(select(Version.id).where(Version.idempotency_key == idempotency_key))
        if done:
            return load_version_records(session, [done])[0]
    planned = plan_files(files, names)
    state = parse_status(status)
    recipe_hash, recipe_body = canonical_recipe(recipe) if recipe is not None else (None, None)
    meta = _check_metadata(metadata)
    proj = find_project(session, project)
    input_rows = _resolve_inputs(session, inputs)
    hashed = [StoredFile(name, *hash_file(src)) for src, name in planned]
    media = media_type or _guess_media_type([n for _, n in planned])
    asset_row = ensure_asset(session, proj, asset, kind, shot, actor)  # locks the asset: publishes queue here
    if not new_version:
        same = _identical_latest(session, asset_row.id, manifest_hash(hashed), media, recipe_hash, meta, input_rows)
        if same is not None:
            return replace(load_version_records(session, [same])[0], reused=True)
    if copy_files:
        content_hash, stored = (store or Store(load_settings().store_url)).put_version(planned, hashed)
    else:
        content_hash, stored = manifest_hash(hashed), hashed
    version = Version(asset_id=asset_row.id, project_id=proj.id, content_hash=content_hash,
                      media_type=media, status=state,
                      recipe_id=_ensure_recipe(session, recipe_hash, recipe_body), meta=meta,
                      created_by=_actor(actor), idempotency_key=idempotency_key)
    session.add(version)
    session.flush()
    session.add_all(VersionFile(version_id=version.id, path=f.path, sha256=f.sha256, size=f.size) for f in stored)
    session.add_all(VersionInput(version_id=version.id, input_id=input_id, role=role) for role, input_id in input_rows)
    session.flush()
    record_event(session, proj.id, EventKind.version_created, _actor(actor), version.id,
                 ref=f"{project}/{asset}@{version.number}", status=state.value)
    session.flush()
    return load_version_records(session, [version.id])[0]


def _identical_latest(session: Session, asset_id: int, content_hash: str, media_type: str, recipe_sha: str | None,
                      meta: dict[str, Any], input_rows: Sequence[tuple[InputRole, int]]) -> int | None:
    """The id of the asset's latest version if it is the same publish as this one, else None.

    Read under the asset's row lock (taken by `ensure_asset`), so two identical publishes that
    race give one version. Columns are selected, not ORM objects, so nothing cached is compared.
    Metadata is compared as `jsonb` (1 and 1.0 are equal, 1 and true are not).
    """
    latest = session.execute(
        select(Version.id, Version.content_hash, Version.media_type, Recipe.sha256,
               (Version.meta == meta).label("same_meta"))
        .outerjoin(Recipe, Recipe.id == Version.recipe_id)
        .where(Version.asset_id == asset_id).order_by(Version.number.desc()).limit(1)
    ).one_or_none()
    if latest is None or not latest.same_meta or (latest.content_hash, latest.media_type, latest.sha256) != (
            content_hash, media_type, recipe_sha):
        return None
    edges = session.execute(select(VersionInput.role, VersionInput.input_id).where(VersionInput.version_id == latest.id))
    return latest.id if {(role, input_id) for role, input_id in edges} == set(input_rows) else None


def _check_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidInputError("metadata must be a mapping of names to JSON values")
    return canonical_recipe(metadata)[1]


def _resolve_inputs(session: Session, inputs: Sequence[InputSpec]) -> list[tuple[InputRole, int]]:
    resolved: dict[tuple[InputRole, int], None] = {}
    for spec in inputs:
        if not isinstance(spec, (tuple, list)) or len(spec) != 2:
            raise InvalidInputError(f"input {spec!r} must be a (role, reference) pair")
        role, ref = spec
        resolved[(parse_role(role), resolve_version(session, ref).id)] = None
    return list(resolved)


def _ensure_recipe(session: Session, sha: str | None, body: dict[str, Any] | None) -> int | None:
    if sha is None:
        return None
    session.execute(pg_insert(Recipe).values(sha256=sha, body=body).on_conflict_do_nothing(index_elements=["sha256"]))
    return session.scalar(select(Recipe.id).where(Recipe.sha256 == sha))


def _guess_media_type(names: Sequence[str]) -> str:
    types = {mimetypes.guess_type(n)[0] or "application/octet-stream" for n in names}
    return types.pop() if len(types) == 1 else "multipart/mixed"


# -- review --------------------------------------------------------------------------------


def set_status(session: Session, ref: str | VersionRef | int, status: str | VersionStatus, *,
               note: str | None = None, actor: str | None = None) -> VersionRecord:
    """Change a version's review status (wip, review, approved, rejected), with an optional note."""
    state = parse_status(status)
    version = resolve_version(session, ref)
    # Lock the asset before the version, the same order as publishing, so the two never deadlock.
    session.execute(select(Asset.id).where(Asset.id == version.asset_id).with_for_update())
    session.refresh(version, with_for_update=True)
    previous = version.status
    who = _actor(actor)
    if previous != state:
        version.status = state
        session.flush()
    record_event(session, version.project_id, EventKind.status_changed, who, version.id,
                 previous=previous.value, status=state.value)
    if note:
        session.add(Note(version_id=version.id, author=who, body=note, status_change=state))
    session.flush()
    session.refresh(version)
    return load_version_records(session, [version.id])[0]


def add_note(session: Session, ref: str | VersionRef | int, body: str, *, actor: str | None = None) -> NoteRecord:
    if not body or not body.strip():
        raise InvalidInputError("a note needs some text")
    version = resolve_version(session, ref)
    note = Note(version_id=version.id, author=_actor(actor), body=body.strip(), status_change=None)
    session.add(note)
    session.flush()
    record_event(session, version.project_id, EventKind.note_added, note.author, version.id, note_id=note.id)
    session.flush()
    return list_notes(session, version.id)[-1]


def list_notes(session: Session, ref: str | VersionRef | int) -> list[NoteRecord]:
    record = get_version(session, ref)
    notes = session.scalars(select(Note).where(Note.version_id == record.id).order_by(Note.id))
    return [NoteRecord(n.id, record.ref, n.author, n.body, n.status_change.value if n.status_change else None,
                       n.created_at) for n in notes]


def count_versions(session: Session, project: str) -> int:
    proj = find_project(session, project)
    return session.scalar(select(func.count()).select_from(Version).where(Version.project_id == proj.id)) or 0
