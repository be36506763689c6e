"""Review page routes: login, sequences, contact sheet, shot view; served by the API itself.

Browsers authenticate with the `backlot_token` cookie, set by the login form from an API
token (HttpOnly, SameSite=Strict). Approving, rejecting and noting go through the JSON API
from review.js, with the X-Backlot-CSRF header.
"""

from __future__ import annotations

import re
from importlib import resources
from math import ceil
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select, text

import backlot
from backlot.access import AuthenticationError, authenticate
from backlot.db.access import Role
from backlot.db.models import Asset, AssetKind, Note, Sequence, Shot, Version
from backlot.db.provenance import VersionCredential
from backlot.errors import NotFoundError
from backlot.refs import ASSET_RE, CODE_RE
from backlot.tracker.versions import load_version_records
from backlot.services.api import queries
from backlot.services.api.auth import COOKIE, AnyToken, DbSession, Viewer, public
from backlot.services.api.convert import edge_visible, media_url
from backlot.services.api.review import render
from backlot.services.api.review.graph import Edge, Node, render_svg
from backlot.services.api.routes.media import media_type

router = APIRouter(tags=["review"], include_in_schema=True)
SHEET_PAGE = 200
STATIC = {"review.css": "text/css; charset=utf-8", "review.js": "text/javascript; charset=utf-8",
          "favicon.svg": "image/svg+xml"}
TOKEN_SHAPE = re.compile(r"^blt_[A-Za-z0-9_-]{43}$")  # what `backlot token create` prints
IMAGE = re.compile(queries.IMAGE_RE, re.IGNORECASE)
THUMB = re.compile(queries.THUMB_RE, re.IGNORECASE)
Code = Annotated[str, Path(pattern=CODE_RE.pattern, max_length=64)]
PageNo = Annotated[int, Query(ge=1, le=100_000)]


def html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers={"Content-Security-Policy": render.CSP,
                                                          "X-Content-Type-Options": "nosniff",
                                                          "Cache-Control": "no-store", "Referrer-Policy": "same-origin"})


# -- public: login, logout, static files ----------------------------------------------------


@router.get("/review/login", response_class=HTMLResponse, openapi_extra=public())
def login_page(reason: Annotated[str | None, Query(max_length=300)] = None) -> HTMLResponse:
    """The sign-in form. `reason` is a code (render.SIGN_IN_REASONS), never text shown as is: a link
    cannot put words on this page, and an unknown code shows the plain form."""
    return html(render.login_form(render.SIGN_IN_REASONS.get(reason or "")))


@router.post("/review/login", response_class=HTMLResponse, openapi_extra=public())
def login(request: Request, session: DbSession, token: Annotated[str, Form(max_length=200)]) -> Response:
    """Check the token and keep it in an HttpOnly cookie for the review pages."""
    try:
        principal = authenticate(session, token.strip())
    except AuthenticationError:
        # The API's message is for scripts; a person gets what to check and whom to ask.
        shape = TOKEN_SHAPE.match(token.strip())
        return html(render.login_form(render.TOKEN_REFUSED if shape else render.TOKEN_MISSHAPEN), status=401)
    response = RedirectResponse(f"/review/{principal.project}", status_code=303)
    response.set_cookie(COOKIE, token.strip(), httponly=True, samesite="strict", path="/",
                        secure=request.url.scheme == "https", max_age=12 * 3600)
    return response


@router.post("/review/logout", response_class=HTMLResponse, openapi_extra=public())
def logout() -> Response:
    response = RedirectResponse("/review/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/review/static/{name}", openapi_extra=public(), response_class=Response)
def static(name: Annotated[str, Path(pattern=r"^[a-z]+\.(css|js|svg)$")]) -> Response:
    """The page's stylesheet, script and icon, from the package (never a path on disk built from the URL)."""
    if name not in STATIC:
        raise NotFoundError(f"no static file {name!r}")
    body = resources.files("backlot.services.api.review").joinpath("static", name).read_bytes()
    return Response(body, media_type=STATIC[name], headers={"Cache-Control": "no-cache"})


@router.get("/favicon.ico", openapi_extra=public(), include_in_schema=False, response_class=Response)
def favicon() -> Response:
    """For what asks the site root for its icon (the pages link favicon.svg): no 404 in any log."""
    body = resources.files("backlot.services.api.review").joinpath("static", "favicon.ico").read_bytes()
    return Response(body, media_type="image/vnd.microsoft.icon", headers={"Cache-Control": "max-age=86400"})


# -- pages --------------------------------------------------------------------------------


@router.get("/review", response_class=HTMLResponse)
def home(principal: AnyToken) -> Response:
    return RedirectResponse(f"/review/{principal.project}", status_code=303)


@router.get("/review/{project}", response_class=HTMLResponse)
def project_index(scope: Viewer) -> HTMLResponse:
    rows = scope.session.execute(text("""
        SELECT s.code, count(sh.id) FROM sequences s LEFT JOIN shots sh ON sh.sequence_id = s.id
        WHERE s.project_id = :p GROUP BY s.id ORDER BY min(sh.editorial_order) NULLS LAST, s.code"""),
        {"p": scope.project_id}).all()
    loose = scope.session.scalar(select(func.count()).select_from(Shot).where(
        Shot.project_id == scope.project_id, Shot.sequence_id.is_(None))) or 0
    return html(render.index(scope.project, _who(scope), [(r[0], r[1]) for r in rows], loose))


@router.get("/review/{project}/sequences/{sequence}", response_class=HTMLResponse)
def sequence_sheet(scope: Viewer, sequence: Code, page: PageNo = 1) -> HTMLResponse:
    """The sequence in editorial order as a contact sheet: thumbnail, status and stale badge per shot."""
    if scope.session.scalar(select(Sequence.id).where(Sequence.project_id == scope.project_id,
                                                     Sequence.code == sequence)) is None:
        raise NotFoundError(f"no sequence {sequence!r} in project {scope.project}")
    return _sheet(scope, sequence, page, f"/review/{scope.project}/sequences/{sequence}", sequence)


@router.get("/review/{project}/shots", response_class=HTMLResponse)
def all_shots(scope: Viewer, page: PageNo = 1) -> HTMLResponse:
    """Every shot of the project in editorial order, as a contact sheet."""
    return _sheet(scope, None, page, f"/review/{scope.project}/shots", f"{scope.project}: all shots")


def _sheet(scope, sequence: str | None, page_no: int, base: str, title: str) -> HTMLResponse:
    sheet = queries.contact_sheet(scope.session, scope.project, scope.project_id, sequence, SHEET_PAGE,
                                  (page_no - 1) * SHEET_PAGE)
    pages = max(1, ceil(sheet.total / SHEET_PAGE))
    return html(render.contact_sheet(scope.project, _who(scope), title, sheet.items, sheet.total, page_no, pages, base))


@router.get("/review/{project}/shots/{shot}", response_class=HTMLResponse)
def shot_view(scope: Viewer, shot: Code,
              asset: Annotated[str | None, Query(pattern=ASSET_RE.pattern, max_length=200)] = None,
              v: Annotated[int | None, Query(ge=1, le=2**31 - 1, description="Version number")] = None) -> HTMLResponse:
    """A shot: its preview (MP4) beside the previous version, its versions, its lineage, approve/reject."""
    record = backlot.get_shot(scope.session, scope.project, shot)
    assets = list(scope.session.scalars(
        select(Asset).where(Asset.shot_id == record.id).order_by(
            (Asset.kind == AssetKind.shot_render).desc(), Asset.name.like("%/main").desc(), Asset.name)))
    names = [a.name for a in assets]
    chosen = next((a for a in assets if a.name == asset), None) if asset else (assets[0] if assets else None)
    if asset and chosen is None:
        raise NotFoundError(f"shot {shot} has no asset {asset!r}")
    who = _who(scope)
    if chosen is None or chosen.latest_number == 0:
        return html(render.shot_page(scope.project, who, record, names, chosen.name if chosen else None, None, None,
                                     [], "", ""))
    stale = queries.stale_map(scope.session, scope.project)
    versions = _version_views(scope, record.code, chosen.name, stale)
    number = v or chosen.latest_number
    selected = next((x for x in versions if x.number == number), None)
    if selected is None:
        raise NotFoundError(f"{chosen.name} has no version {number} (latest is {chosen.latest_number})")
    previous = next((x for x in reversed(versions) if x.number < selected.number), None)
    role = scope.principal.role
    form = render.review_form(scope.project, selected, role.allows(Role.supervisor), role.allows(Role.artist))
    svg = _lineage(scope, selected.id, stale)
    figures = _continuity(scope, selected.id) if chosen.kind == AssetKind.shot_render else None
    return html(render.shot_page(scope.project, who, record, names, chosen.name, selected, previous, versions, svg,
                                 form, render.continuity_pane(figures)))


def _continuity(scope, version_id: int):
    """Continuity figures measured on the stored frames when the page is asked for (versions
    never change, so they are kept per version and neighbour). Against the version it continued
    from, else the previous shot's current version; None when the frames cannot be read."""
    from backlot.errors import BacklotError
    from backlot.generation.continuity import cached_shot_continuity

    try:
        return cached_shot_continuity(scope.session, backlot.get_version(scope.session, version_id))
    except (BacklotError, OSError, ValueError):
        return None


def _version_views(scope, shot: str, asset: str, stale: dict[int, queries.StaleInfo]) -> list[render.VersionView]:
    asset_id = scope.session.scalar(select(Asset.id).where(Asset.project_id == scope.project_id, Asset.name == asset))
    ids = list(scope.session.scalars(select(Version.id).where(Version.asset_id == asset_id).order_by(Version.number)))
    records = load_version_records(scope.session, ids)
    credentials = dict(scope.session.execute(select(VersionCredential.version_id, VersionCredential.lineage)
                                             .where(VersionCredential.version_id.in_(ids))).tuples().all())
    notes: dict[int, list] = {}
    for n in scope.session.scalars(select(Note).where(Note.version_id.in_(ids)).order_by(Note.id)):
        notes.setdefault(n.version_id, []).append(n)
    views = []
    for r in records:
        files = [(f.path, f.sha256) for f in r.files]
        views.append(render.VersionView(
            id=r.id, number=r.number, status=r.status, created_by=r.created_by, created_at=r.created_at,
            thumbnail=_pick_thumbnail(scope.project, files, r.id), preview=_pick_preview(scope.project, files, r.id),
            stale_reason=stale[r.id].reason if r.id in stale else None,
            notes=[backlot.NoteRecord(n.id, r.ref, n.author, n.body,
                                       n.status_change.value if n.status_change else None, n.created_at)
                   for n in notes.get(r.id, [])],
            href=f"/review/{scope.project}/shots/{shot}?{urlencode({'asset': asset, 'v': r.number})}",
            credentials=credentials.get(r.id)))
    return views


def _pick_thumbnail(project: str, files: list[tuple[str, str]], version_id: int) -> str | None:
    images = sorted((not THUMB.search(p), p, sha) for p, sha in files if IMAGE.search(p))
    return _version_media(project, images[0][2], version_id) if images else None


def _pick_preview(project: str, files: list[tuple[str, str]], version_id: int) -> str | None:
    videos = sorted((not p.rsplit("/", 1)[-1].startswith("preview"), p, sha) for p, sha in files
                    if media_type(p).startswith("video/"))
    return _version_media(project, videos[0][2], version_id) if videos else None


def _version_media(project: str, sha256: str, version_id: int) -> str:
    """This version's copy of the content: its signed copy (with its own lineage) when it has one."""
    return f"{media_url(project, sha256)}?version={version_id}"


def _lineage(scope, version_id: int, stale: dict[int, queries.StaleInfo]) -> str:
    edges = [e for e in backlot.get_inputs(scope.session, version_id, transitive=True)
             if edge_visible(e, scope.project)]
    if not edges:
        return ""
    ids = {version_id} | {e.input_id for e in edges} | {e.version_id for e in edges}
    rows = scope.session.execute(text("""
        SELECT v.id, a.name, a.kind::text AS kind, v.number, v.status::text AS status, v.superseded, sh.code AS shot
        FROM versions v JOIN assets a ON a.id = v.asset_id LEFT JOIN shots sh ON sh.id = a.shot_id
        WHERE v.id = ANY(:ids)"""), {"ids": list(ids)})
    nodes = {}
    for r in rows:
        href = (f"/review/{scope.project}/shots/{r.shot}?{urlencode({'asset': r.name, 'v': r.number})}" if r.shot
                else f"/api/projects/{scope.project}/versions/{r.id}")
        nodes[r.id] = Node(r.id, r.name, r.kind, r.number, r.status, r.superseded, r.id in stale, href)
    return render_svg(version_id, nodes, [Edge(e.version_id, e.input_id, e.role) for e in edges])


def _who(scope) -> str:
    return f"{scope.principal.name} ({scope.principal.role.value})"
