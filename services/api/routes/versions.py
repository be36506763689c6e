"""Versions: list, look up, publish (multipart upload), lineage, notes, approve and reject."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path as FsPath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Path, Query, Response, UploadFile
from sqlalchemy import func, select

import backlot
from backlot.access import PermissionDeniedError
from backlot.db.access import Role
from backlot.db.models import Asset, AssetKind, InputRole, Shot, Version, VersionStatus
from backlot.errors import InvalidInputError, NotFoundError
from backlot.refs import CODE_RE, check_asset_name, parse_version_ref
from backlot.tracker.versions import load_version_records
from backlot.services.api.auth import Artist, Scope, Supervisor, Viewer
from backlot.services.api.convert import edge_visible, version_out
from backlot.services.api.errors import ERROR_RESPONSES
from backlot.services.api.paging import AssetFilter, CodeFilter, Limit, Offset, VersionId, page_of
from backlot.services.api.schemas import LineageEdgeOut, NoteIn, NoteOut, Page, RejectIn, ReviewIn, VersionOut

router = APIRouter(prefix="/api/projects/{project}", responses=ERROR_RESPONSES, tags=["versions"])

MAX_FILES = 1000


def find_version(scope: Scope, version_id: int) -> Version:
    """The version with this id if it belongs to the caller's project; else 404, as if it did not exist."""
    version = scope.session.get(Version, version_id)
    if version is None or version.project_id != scope.project_id:
        raise NotFoundError(f"no version {version_id} in project {scope.project}")
    return version


@router.get("/versions", response_model=Page[VersionOut])
def list_versions(scope: Viewer, asset: AssetFilter = None, kind: AssetKind | None = None,
                  status: VersionStatus | None = None, shot: CodeFilter = None, limit: Limit = 100,
                  offset: Offset = 0) -> Page[VersionOut]:
    """Versions of the project, newest first; filter by asset, kind, status or shot."""
    stmt = select(Version.id).join(Asset, Asset.id == Version.asset_id).where(Version.project_id == scope.project_id)
    if asset is not None:
        stmt = stmt.where(Asset.name == asset)
    if kind is not None:
        stmt = stmt.where(Asset.kind == kind)
    if status is not None:
        stmt = stmt.where(Version.status == status)
    if shot is not None:
        stmt = stmt.join(Shot, Shot.id == Asset.shot_id).where(Shot.code == shot)
    total = scope.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    ids = list(scope.session.scalars(stmt.order_by(Version.id.desc()).limit(limit).offset(offset)))
    items = [version_out(v) for v in load_version_records(scope.session, ids)]
    return Page[VersionOut](items=items, total=total, limit=limit, offset=offset)


@router.get("/versions/{version_id}", response_model=VersionOut)
def get_version(scope: Viewer, version_id: VersionId) -> VersionOut:
    return version_out(backlot.get_version(scope.session, find_version(scope, version_id).id))


@router.get("/refs/{ref:path}", response_model=VersionOut)
def resolve_ref(scope: Viewer, ref: Annotated[str, Path(description="ASSET@N, ASSET@latest or ASSET@approved")]) -> VersionOut:
    """Resolve a reference inside the project, e.g. `characters/mara@approved`."""
    parsed = parse_version_ref(f"{scope.project}/{ref}")
    return version_out(backlot.get_version(scope.session, parsed))


# -- publish -------------------------------------------------------------------------------


@router.post("/versions", response_model=VersionOut, status_code=201, responses={
    201: {"description": "A new version was published"},
    200: {"model": VersionOut, "description": "Identical to the asset's latest version, which is returned "
                                              "unchanged (`reused` is true); nothing was written"}})
def publish(
    scope: Artist,
    response: Response,
    asset: Annotated[str, Form(max_length=200, description="Asset name, e.g. characters/mara")],
    files: Annotated[list[UploadFile], File(description="The version's files; each file name is its name in the version")],
    kind: Annotated[AssetKind | None, Form(description="Required when the asset is new")] = None,
    status: Annotated[Literal["wip", "review", "approved", "rejected"], Form()] = "wip",
    shot: Annotated[str | None, Form(pattern=CODE_RE.pattern, max_length=64)] = None,
    inputs: Annotated[list[str], Form(description="ROLE=ASSET@N (repeat the field)")] = [],  # noqa: B006
    recipe: Annotated[str | None, Form(description="A JSON object")] = None,
    metadata: Annotated[str | None, Form(description="A JSON object")] = None,
    new_version: Annotated[bool, Form(description="Publish a new number even when the latest version is "
                                                  "identical")] = False,
) -> VersionOut:
    """Publish a new version from uploaded files. Everything is checked before anything is written.

    When the asset's latest version has the same files, inputs, recipe, metadata and media type,
    it is returned as it is with `reused: true` and status 200 (its status is not changed);
    `new_version=true` publishes a new number anyway.
    """
    if status in ("approved", "rejected") and not scope.principal.allows(Role.supervisor):
        raise PermissionDeniedError(f"publishing as {status} needs the supervisor role")
    check_asset_name(asset)
    if not files or len(files) > MAX_FILES:
        raise InvalidInputError(f"send between 1 and {MAX_FILES} files")
    names = [_file_name(f) for f in files]
    input_specs = [_input_spec(scope, spec) for spec in inputs]
    recipe_body, meta = _json_object(recipe, "recipe"), _json_object(metadata, "metadata")
    with tempfile.TemporaryDirectory(prefix="backlot-upload-") as tmp:
        paths = []
        for index, upload in enumerate(files):
            path = FsPath(tmp) / str(index)  # our own name: the client's name is only used, checked, in the store
            with open(path, "wb") as out:
                shutil.copyfileobj(upload.file, out, 1 << 20)
            paths.append(path)
        record = backlot.publish_version(
            scope.session, scope.project, asset, paths, names=names, kind=kind, inputs=input_specs,
            recipe=recipe_body, metadata=meta, status=status, shot=shot,
            store=scope.store, actor=scope.actor, new_version=new_version)
    if record.reused:
        response.status_code = 200
    return version_out(record)


def _file_name(upload: UploadFile) -> str:
    name = upload.filename or ""
    if not name or len(name) > 1000 or not name.isprintable():
        raise InvalidInputError("every uploaded file needs a printable file name (its name in the version)")
    return name


def _input_spec(scope: Scope, spec: str) -> tuple[str, str]:
    role, sep, ref = spec.partition("=")
    if not sep or not role or not ref:
        raise InvalidInputError(f"input {spec!r} is malformed: expected ROLE=ASSET@N")
    if not ref.startswith(f"{scope.project}/"):
        ref = f"{scope.project}/{ref}"  # inputs are of the token's own project: a path never leaves it
    return role, ref


def _json_object(text: str | None, what: str) -> dict[str, Any] | None:
    if text is None or text == "":
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InvalidInputError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidInputError(f"{what} must be a JSON object")
    return value


# -- lineage -------------------------------------------------------------------------------

Transitive = Annotated[bool, Query(description="Follow the whole chain, not just one step")]
Roles = Annotated[list[InputRole] | None, Query(
    max_length=len(InputRole),
    description="Follow only edges of these roles (repeat the parameter). Default: every role but "
                "`regenerated_from` (the production inputs); `roles=regenerated_from` walks the version history")]


@router.get("/versions/{version_id}/inputs", response_model=Page[LineageEdgeOut], tags=["lineage"])
def list_inputs(scope: Viewer, version_id: VersionId, transitive: Transitive = False, roles: Roles = None,
                limit: Limit = 100, offset: Offset = 0) -> Page[LineageEdgeOut]:
    """What the version was made from (upstream edges with their depth)."""
    edges = backlot.get_inputs(scope.session, find_version(scope, version_id).id, transitive=transitive,
                               roles=roles)
    items = [LineageEdgeOut(**e.to_dict()) for e in edges if edge_visible(e, scope.project)]
    return page_of(items, limit, offset)


@router.get("/versions/{version_id}/outputs", response_model=Page[LineageEdgeOut], tags=["lineage"])
def list_outputs(scope: Viewer, version_id: VersionId, transitive: Transitive = False, roles: Roles = None,
                 limit: Limit = 100, offset: Offset = 0) -> Page[LineageEdgeOut]:
    """What was made from the version (downstream edges)."""
    edges = backlot.get_outputs(scope.session, find_version(scope, version_id).id, transitive=transitive,
                                roles=roles)
    items = [LineageEdgeOut(**e.to_dict()) for e in edges if edge_visible(e, scope.project)]
    return page_of(items, limit, offset)


# -- review --------------------------------------------------------------------------------


@router.get("/versions/{version_id}/notes", response_model=Page[NoteOut], tags=["review"])
def list_notes(scope: Viewer, version_id: VersionId, limit: Limit = 100, offset: Offset = 0) -> Page[NoteOut]:
    notes = backlot.list_notes(scope.session, find_version(scope, version_id).id)
    return page_of([NoteOut(**n.to_dict()) for n in notes], limit, offset)


@router.post("/versions/{version_id}/notes", response_model=NoteOut, status_code=201, tags=["review"])
def add_note(scope: Artist, version_id: VersionId, body: NoteIn) -> NoteOut:
    note = backlot.add_note(scope.session, find_version(scope, version_id).id, body.body, actor=scope.actor)
    return NoteOut(**note.to_dict())


@router.post("/versions/{version_id}/approve", response_model=VersionOut, tags=["review"])
def approve(scope: Supervisor, version_id: VersionId, body: ReviewIn | None = None) -> VersionOut:
    """Approve the version, with an optional note."""
    version = find_version(scope, version_id)
    note = body.note if body is not None else None
    return version_out(backlot.set_status(scope.session, version.id, "approved", note=note, actor=scope.actor))


@router.post("/versions/{version_id}/reject", response_model=VersionOut, tags=["review"])
def reject(scope: Supervisor, version_id: VersionId, body: RejectIn) -> VersionOut:
    """Reject the version; the note saying what is wrong is required."""
    version = find_version(scope, version_id)
    return version_out(backlot.set_status(scope.session, version.id, "rejected", note=body.note, actor=scope.actor))
