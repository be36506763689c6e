"""HTML for the review page: plain server-rendered markup, every value escaped."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from html import escape
from urllib.parse import urlencode

from backlot.tracker.records import NoteRecord
from backlot.services.api.schemas import ContactSheetItem

CSP = ("default-src 'none'; img-src 'self' data:; media-src 'self'; script-src 'self'; style-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def h(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def page(title: str, body: str, *, project: str | None = None, who: str | None = None) -> str:
    header = ""
    if project:
        header = (f'<header class="top"><a class="home" href="/review/{h(project)}">Backlot · {h(project)}</a>'
                  f'<span class="who">{h(who)}</span>'
                  f'<form method="post" action="/review/logout"><button type="submit">Log out</button></form></header>')
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{h(title)} · Backlot review</title><link rel="stylesheet" href="/review/static/review.css">'
            f'<link rel="icon" href="/review/static/favicon.svg" type="image/svg+xml">'
            f'<script src="/review/static/review.js" defer></script></head>'
            f'<body>{header}<main>{body}</main></body></html>')


# Written for a person at the sign-in form; the API's own messages are for scripts.
SIGN_IN_REASONS = {"ended": "Your sign-in has ended: the token was withdrawn or has expired. "
                            "Sign in again with a current token; your supervisor or pipeline team can give you one."}
TOKEN_REFUSED = ("That token was not accepted. It may have been mistyped, withdrawn or expired: paste it again, "
                 "or ask your supervisor or pipeline team for a new one.")
TOKEN_MISSHAPEN = ("That does not look like a whole review token: a token starts with blt_ and is 47 characters "
                   "long. Copy all of it and paste it again.")


def login_form(message: str | None = None) -> str:
    """The sign-in form: nothing but the form until the person acts; `message` is written for them."""
    alert = f'<p class="alert" role="alert">{h(message)}</p>' if message else ""
    body = (f'<section class="login"><h1>Sign in to Backlot review</h1>{alert}'
            f'<form method="post" action="/review/login"><label for="token">Your review token</label>'
            f'<input id="token" type="password" name="token" autocomplete="off" required autofocus '
            f'placeholder="blt_…"><button type="submit">Sign in</button></form>'
            f'<p class="hint">No token yet? Ask your supervisor or pipeline team for one.</p>'
            f'<details class="hint"><summary>For the pipeline team</summary>'
            f'<code>backlot token create --project P --role supervisor</code> prints a token '
            f'(viewer to look, supervisor to approve).</details></section>')
    return page("Sign in", body)


def status_badge(status: str | None, version_id: int | None = None) -> str:
    if not status:
        return ""
    target = f' data-status-for="{version_id}"' if version_id else ""
    return f'<span class="badge status {h(status)}"{target}>{h(status)}</span>'


def stale_badge(reason: str | None) -> str:
    return f'<span class="badge stale" title="{h(reason)}">stale</span>' if reason else ""


def placeholder(text: str = "no thumbnail") -> str:
    return f'<div class="thumb placeholder" role="img" aria-label="{h(text)}"><span>{h(text)}</span></div>'


def thumb(url: str | None, alt: str) -> str:
    if not url:
        return placeholder()
    return f'<img class="thumb" src="{h(url)}" alt="{h(alt)}" width="256" height="144" loading="lazy">'


# -- index and contact sheet ----------------------------------------------------------------


def index(project: str, who: str, sequences: list[tuple[str, int]], loose: int) -> str:
    rows = "".join(f'<li><a href="/review/{h(project)}/sequences/{h(code)}">{h(code)}</a> '
                   f'<span class="count">{count} shot{"s" if count != 1 else ""}</span></li>'
                   for code, count in sequences)
    extra = (f'<p><a href="/review/{h(project)}/shots">All shots</a> ({loose} not in a sequence)</p>'
             if loose else f'<p><a href="/review/{h(project)}/shots">All shots</a></p>')
    body = f'<h1>{h(project)}</h1><h2>Sequences</h2><ol class="sequences">{rows or "<li>none yet</li>"}</ol>{extra}'
    return page(project, body, project=project, who=who)


def contact_sheet(project: str, who: str, title: str, items: list[ContactSheetItem], total: int, page_no: int,
                  pages: int, base: str) -> str:
    tiles = "".join(_tile(project, item) for item in items) or "<li class='empty'>No shots.</li>"
    stale = sum(1 for i in items if i.stale)
    nav = _pager(base, page_no, pages)
    body = (f'<h1>{h(title)} <small>{total} shot{"s" if total != 1 else ""} · {stale} stale on this page</small></h1>'
            f'{nav}<ol class="sheet">{tiles}</ol>{nav}')
    return page(title, body, project=project, who=who)


def _tile(project: str, item: ContactSheetItem) -> str:
    shot = item.shot
    classes = "tile" + (" stale" if item.stale else "") + (f" status-{h(item.status)}" if item.status else "")
    version = f'<span class="ver">v{item.number}</span>' if item.number else '<span class="ver none">no version</span>'
    approved = (f'<span class="approved-no" title="approved version">✓v{item.approved_number}</span>'
                if item.approved_number and item.approved_number != item.number else "")
    return (f'<li class="{classes}" data-shot="{h(shot.code)}" data-version="{item.version_id or ""}">'
            f'<a href="/review/{h(project)}/shots/{h(shot.code)}">{thumb(item.thumbnail, f"{shot.code} v{item.number}")}'
            f'<div class="meta"><span class="order">#{shot.editorial_order or "–"}</span> '
            f'<b class="code">{h(shot.code)}</b> {version}{approved}</div>'
            f'<div class="badges">{status_badge(item.status, item.version_id)}{stale_badge(item.stale_reason)}</div>'
            f'</a></li>')


def _pager(base: str, page_no: int, pages: int) -> str:
    if pages <= 1:
        return ""
    prev = f'<a rel="prev" href="{h(base)}?{urlencode({"page": page_no - 1})}">← previous</a>' if page_no > 1 else ""
    nxt = f'<a rel="next" href="{h(base)}?{urlencode({"page": page_no + 1})}">next →</a>' if page_no < pages else ""
    return f'<nav class="pager">{prev} page {page_no} of {pages} {nxt}</nav>'


# -- shot view --------------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionView:
    id: int
    number: int
    status: str
    created_by: str
    created_at: datetime
    thumbnail: str | None
    preview: str | None  # a video
    stale_reason: str | None
    notes: list[NoteRecord]
    href: str
    credentials: dict | None = None  # the lineage its Content Credentials carry (None: unsigned)


def credentials_mark(v: VersionView) -> str:
    """The Content Credentials mark: the files carry signed C2PA manifests; hover or open for the lineage."""
    c = v.credentials
    if not c:
        return ""
    lines = ["Content Credentials: generated content (trainedAlgorithmicMedia), signed by Backlot"]
    if c.get("base_model"):
        lines.append(f"base model {c['base_model']['ref']}")
    for a in c.get("adapters", []):
        art = ", ".join(t["ref"] for t in a.get("training_data", []))
        lines.append(f"adapter {a['ref']}" + (f" trained on {art}" if art else ""))
    if c.get("continuity"):
        lines.append(f"continues from {c['continuity']['ref']}")
    if c.get("regenerated_from"):
        lines.append(f"regenerated from {c['regenerated_from']['ref']}")
    items = "".join(f"<li>{h(line)}</li>" for line in lines[1:])
    return (f'<details class="badge credentials" data-credentials-for="{v.id}" title="{h(chr(10).join(lines))}">'
            f'<summary aria-label="Content Credentials">CR</summary><ul>{items}</ul></details>')


def media_pane(v: VersionView | None, label: str) -> str:
    if v is None:
        return f'<figure class="pane empty">{placeholder("nothing to compare")}<figcaption>{h(label)}</figcaption></figure>'
    if v.preview:
        poster = f' poster="{h(v.thumbnail)}"' if v.thumbnail else ""
        media = (f'<video class="preview" controls preload="metadata" src="{h(v.preview)}"{poster} '
                 f'data-version="{v.id}"></video>')
    else:
        media = thumb(v.thumbnail, f"v{v.number}").replace('loading="lazy"', "")
    return (f'<figure class="pane">{media}<figcaption>{h(label)} <b>v{v.number}</b> '
            f'{status_badge(v.status, v.id)}{stale_badge(v.stale_reason)}{credentials_mark(v)}</figcaption></figure>')


def review_form(project: str, v: VersionView, can_review: bool, can_note: bool) -> str:
    if not (can_review or can_note):
        return ""
    api = f"/api/projects/{h(project)}/versions/{v.id}"
    buttons = ('<button type="submit" name="decision" value="approve" class="approve">Approve</button>'
               '<button type="submit" name="decision" value="reject" class="reject">Reject</button>'
               if can_review else "")
    note_button = '<button type="submit" name="decision" value="note" class="note">Add note</button>' if can_note else ""
    return (f'<form id="review" class="review-form" data-api="{api}" data-version="{v.id}">'
            f'<label for="note">Note on v{v.number}</label>'
            f'<textarea id="note" name="note" rows="3" maxlength="10000" '
            f'placeholder="What works, what to change (required to reject)"></textarea>'
            f'<div class="actions">{buttons}{note_button}</div>'
            f'<output id="review-result" role="status"></output></form>')


def history(versions: list[VersionView], selected: int) -> str:
    cards = []
    for v in reversed(versions):
        notes = "".join(f'<li><b>{h(n.author)}</b>{" → " + h(n.status_change) if n.status_change else ""}: '
                        f'{h(n.body)}</li>' for n in v.notes)
        cls = "card selected" if v.number == selected else "card"
        cards.append(f'<li class="{cls}" data-version="{v.id}"><a href="{h(v.href)}">'
                     f'{thumb(v.thumbnail, f"v{v.number}")}</a>'
                     f'<div class="meta"><b>v{v.number}</b> {status_badge(v.status, v.id)}{stale_badge(v.stale_reason)}'
                     f'{credentials_mark(v)}'
                     f'</div><div class="by">{h(v.created_by)} · {v.created_at:%Y-%m-%d %H:%M}</div>'
                     f'<ul class="notes" data-notes-for="{v.id}">{notes}</ul></li>')
    return f'<section class="history"><h2>Versions</h2><ol class="versions">{"".join(cards)}</ol></section>'


def continuity_pane(figures) -> str:
    """The selected render's continuity figures (backlot.generation.continuity.ShotContinuity)."""
    if figures is None:
        return ""
    value = lambda x: "–" if x is None else f"{x:.1f}"  # noqa: E731
    source = (f'cut from <b>{h(figures.boundary_from)}</b> (its last frame against this first frame): '
              f'<b class="figure">{value(figures.boundary)}</b>' if figures.boundary is not None
              else "no shot before it to cut from")
    return (f'<section class="continuity"><h2>Continuity</h2><p>{source} · frame to frame inside the shot: '
            f'<b class="figure">{value(figures.within)}</b> over {figures.frames} frames '
            f'<small>(mean |difference| of 8-bit RGB, 0–255)</small></p></section>')


def shot_page(project: str, who: str, shot, assets: list[str], asset: str | None, selected: VersionView | None,
              previous: VersionView | None, versions: list[VersionView], lineage_svg: str, review: str,
              continuity: str = "") -> str:
    seq = f'sequence <a href="/review/{h(project)}/sequences/{h(shot.sequence)}">{h(shot.sequence)}</a> · ' \
        if shot.sequence else ""
    head = (f'<h1>{h(shot.code)} <small>{seq}frames {shot.cut_in}–{shot.cut_out}'
            f'{f" (+{shot.handles} handles)" if shot.handles else ""} · #{shot.editorial_order or "–"}</small></h1>')
    tabs = ""
    if len(assets) > 1:
        tabs = '<nav class="assets">' + "".join(
            f'<a href="/review/{h(project)}/shots/{h(shot.code)}?{urlencode({"asset": a})}"'
            f'{" class=current" if a == asset else ""}>{h(a)}</a>' for a in assets) + "</nav>"
    if selected is None:
        return page(shot.code, head + tabs + '<p class="empty">Nothing published for this shot yet.</p>',
                    project=project, who=who)
    viewer = (f'<section class="viewer">{media_pane(selected, "selected")}'
              f'{media_pane(previous, "previous")}</section>')
    lineage = (f'<section class="lineage-section"><h2>Lineage of {h(asset)} v{selected.number}</h2>'
               f'{lineage_svg or "<p>No inputs recorded.</p>"}</section>')
    body = head + tabs + viewer + continuity + review + history(versions, selected.number) + lineage
    return page(shot.code, body, project=project, who=who)
