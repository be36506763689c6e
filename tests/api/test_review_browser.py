"""The review page in a real browser (Debian's Chromium, headless, driven by Playwright) against the
running API: log in, read the contact sheet, watch and seek the preview, approve with a note, and
find the approval in the database. A screenshot proves the thumbnails are drawn; another, of a shot
at the end of a five-shot continuity chain, that the lineage graph's labels are readable."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import text

import backlot
from backlot.db.engine import session_scope
from backlot.storage import Store
from tests.api.conftest import COLOURS, engine_for
from tests.api.images import Image, close, png

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(not shutil.which("chromium"), reason="needs Debian's chromium (.ci/setup installs it)")


@pytest.fixture(scope="module")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=live.base_url)
    page = context.new_page()
    requests_outside, failed = [], []
    page.on("request", lambda r: requests_outside.append(r.url) if not r.url.startswith(live.base_url) else None)
    # Any 4xx/5xx a page's own loads get (a missing favicon was one); API answers to the tests' clicks aside.
    page.on("response", lambda r: failed.append((r.status, r.url)) if r.status >= 400
            and r.request.method == "GET" else None)
    yield page
    context.close()
    assert requests_outside == [], "the review page must not reach the network"
    assert failed == [], "the pages asked for something the server does not have"


def log_in(page, token: str) -> None:
    page.goto("/review/login")
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    page.wait_for_url("**/review/*")


def wait_for_images(page) -> list[int]:
    """[images, loaded ones] once every image has loaded or failed (the page's CSP forbids eval, which
    Playwright's wait_for_function needs)."""
    return page.evaluate("""() => Promise.all([...document.images].map(i => i.complete ? i :
        new Promise(done => { i.onload = i.onerror = () => done(i); }))).then(
        images => [images.length, images.filter(i => i.naturalWidth > 0).length])""")


def test_approve_a_shot_in_the_browser(page, live, production):
    p = production.code
    log_in(page, production.tokens["supervisor"])
    page.click("text=sq010")
    tiles = page.locator("ol.sheet > li")
    assert tiles.evaluate_all("ts => ts.map(t => t.dataset.shot)") == [s for s in COLOURS if s.startswith("sq010")]
    assert page.locator("li[data-shot=sq010_sh0040] .badge.stale").count() == 1

    page.click("li[data-shot=sq010_sh0020] a")
    page.wait_for_url(f"**/review/{p}/shots/sq010_sh0020")
    # The MP4 preview plays and seeks: range requests work.
    video = page.locator(".pane video").first
    video.evaluate("v => new Promise((ok, fail) => { if (v.readyState >= 1) ok(); v.onloadedmetadata = ok; "
                   "v.onerror = () => fail(v.error && v.error.message); })")
    assert video.evaluate("v => v.duration") == pytest.approx(4.0, abs=0.1)
    seeked = video.evaluate("v => new Promise(ok => { v.onseeked = () => ok(v.currentTime); v.currentTime = 3; })")
    assert seeked == pytest.approx(3.0, abs=0.1)
    # The lineage graph names the art, the adapter and the neighbour it continues from.
    nodes = page.locator("svg.lineage g.node title").evaluate_all("ts => ts.map(t => t.textContent)")
    assert any(t.startswith("characters/mara@1") for t in nodes)
    assert any(t.startswith("adapters/mara@1") for t in nodes)
    assert any(t.startswith("shots/sq010_sh0010/main@2") or t.startswith("shots/sq010_sh0010/main@1") for t in nodes)
    assert page.locator("svg.lineage g.node.superseded").count() >= 1  # the old look of the art

    page.fill("#note", "continuity with sh0010 holds; approved")
    page.click("button.approve")
    page.wait_for_selector("#review-result.ok")
    assert "approved" in page.inner_text("#review-result")
    assert page.locator(f"[data-status-for='{production.vid('shots/sq010_sh0020/main@1')}']").first.inner_text() \
        .lower() == "approved"

    with engine_for(live.settings).connect() as conn:
        status, approved_by = conn.execute(text(
            "SELECT v.status::text, n.author FROM versions v JOIN notes n ON n.version_id = v.id "
            "WHERE v.id = :v AND n.body = 'continuity with sh0010 holds; approved'"),
            {"v": production.vid("shots/sq010_sh0020/main@1")}).one()
    assert (status, approved_by) == ("approved", "supervisor-bot")


def test_reject_needs_a_note_and_viewers_cannot_review(page, live, production):
    p = production.code
    log_in(page, production.tokens["supervisor"])
    page.goto(f"/review/{p}/shots/sq010_sh0040")
    page.click("button.reject")
    page.wait_for_selector("#review-result.error")
    assert "note" in page.inner_text("#review-result")
    with engine_for(live.settings).connect() as conn:
        assert conn.execute(text("SELECT status::text FROM versions WHERE id = :v"),
                            {"v": production.vid("shots/sq010_sh0040/main@1")}).scalar() == "review"

    page.context.clear_cookies()
    log_in(page, production.tokens["viewer"])
    page.goto(f"/review/{p}/shots/sq010_sh0040")
    assert page.locator("button.approve").count() == 0 and page.locator("#review").count() == 0


def test_contact_sheet_screenshot_shows_thumbnails(page, live, production):
    log_in(page, production.tokens["viewer"])
    page.goto(f"/review/{production.code}/sequences/sq010")
    assert wait_for_images(page) == [3, 3]  # three thumbnails (sh0030 has a placeholder), none broken
    shot = Image(page.screenshot(full_page=True))
    for code, colour in COLOURS.items():
        if not code.startswith("sq010"):
            continue
        box = page.locator(f"li[data-shot={code}] .thumb").bounding_box()
        cx, cy = int(box["x"] + box["width"] / 2), int(box["y"] + box["height"] / 2)
        pixel = shot.pixel(cx, cy)
        if colour is None:  # no image in that version: the striped placeholder, not someone else's picture
            assert page.locator(f"li[data-shot={code}] .placeholder").count() == 1
            assert not any(close(pixel, c) for c in COLOURS.values() if c), pixel
        else:
            assert close(pixel, colour), f"{code}: expected {colour} at the thumbnail's centre, got {pixel}"


TECHNICAL = ("Bearer", "Authorization", "API token", "HTTP", "blt_x")


def test_login_refuses_bad_and_revoked_tokens(page, live, production):
    # A first visit: the sign-in form and nothing else, however the reviewer arrives.
    for start in ("/review", f"/review/{production.code}/shots/sq010_sh0020", "/review/login"):
        page.goto(start)
        assert page.url.endswith("/review/login"), start
        assert page.locator(".alert").count() == 0, page.inner_text(".alert")
        assert page.locator("input[name=token]").is_visible() and page.inner_text("button[type=submit]") == "Sign in"
        assert not any(word in page.inner_text("main") for word in TECHNICAL), page.inner_text("main")
    assert page.evaluate("document.activeElement.name") == "token"  # ready to paste

    for token, says in [("blt_" + "x" * 43, "not accepted"), ("blt_x", "does not look like a whole review token")]:
        page.fill("input[name=token]", token)
        page.click("button[type=submit]")
        alert = page.inner_text(".alert")
        assert says in alert and page.locator("input[name=token]").is_visible(), alert
        assert not any(word in alert for word in TECHNICAL), alert

    log_in(page, production.tokens["viewer"])
    from backlot import access

    with session_scope(engine_for(live.settings)) as s:
        token = next(t for t in access.list_tokens(s, production.code) if t.name == "viewer-bot")
        access.revoke_token(s, token.id)
    page.goto(f"/review/{production.code}")
    alert = page.inner_text(".alert")
    assert "/review/login" in page.url and "sign-in has ended" in alert
    assert not any(word in alert for word in TECHNICAL), alert


def add_continuity_chain(settings, code: str, work: Path) -> str:
    """A base model, two adapters trained on it, and sequence sq030: five shots, each continuing from the one
    before, all made from the base model, both adapters and the concept art. Returns the last shot's code."""
    store = Store(settings.backlot.store_url)
    work.mkdir(parents=True, exist_ok=True)

    def publish(s, asset, **kw):
        path = work / f"{uuid.uuid4().hex[:8]}.png"
        path.write_bytes(png(32, 18, (120, 120, 120)))
        return backlot.publish_version(s, code, asset, [path], names=["thumbnail.png"], store=store,
                                       actor="tests", **kw).ref

    with session_scope(engine_for(settings)) as s:
        base = publish(s, "models/base-xl", kind="base_model", status="approved")
        adapters = [publish(s, name, kind="adapter", status="approved",
                            inputs=[("base_model", base), ("training_data", f"{code}/characters/mara@2")])
                    for name in ("adapters/mara-xl", "adapters/ink-style")]
        previous = None
        for n in range(1, 6):
            shot = f"sq030_sh{n * 10:04d}"
            backlot.create_shot(s, code, shot, sequence="sq030", frames=24, actor="tests")
            inputs = [("base_model", base), ("concept_art", f"{code}/characters/mara@2"),
                      *[("adapter", a) for a in adapters], *([("continuity", previous)] if previous else [])]
            previous = publish(s, f"shots/{shot}/main", kind="shot_render", shot=shot, inputs=inputs, status="review")
    return shot


# Boxes in page pixels of every edge label, every node and the continuity group (the page's CSP forbids eval).
BOXES = """svg => {
    const box = e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
    return {labels: [...svg.querySelectorAll('.edge text')].map(t => [t.textContent, box(t)]),
            backs: [...svg.querySelectorAll('.edge rect.label-bg')].map(box),
            nodes: [...svg.querySelectorAll('g.node > rect, g.group > rect')].map(box),
            names: [...svg.querySelectorAll('g.node text.name')].map(t => [t.textContent, box(t)]),
            rects: [...svg.querySelectorAll('g.node > rect')].map(box),
            group: [...svg.querySelectorAll('g.group g.node title')].map(t => t.textContent)}; }"""


def overlap(a: list[float], b: list[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_lineage_labels_are_readable_on_a_continuity_chain(page, live, production, tmp_path):
    """The shot at the end of a five-shot chain: every input drawn, the chain grouped, no label on another
    label or on a node, each label inside its background, each name inside its node; a screenshot for a person."""
    last = add_continuity_chain(live.settings, production.code, tmp_path / "files")
    log_in(page, production.tokens["viewer"])
    page.goto(f"/review/{production.code}/shots/{last}")
    graph = page.locator("svg.lineage")
    graph.scroll_into_view_if_needed()
    graph.screenshot(path=str(tmp_path / "lineage-continuity-chain.png"))
    boxes = graph.evaluate(BOXES)

    titles = graph.locator("g.node title").evaluate_all("ts => ts.map(t => t.textContent.split(' ')[0])")
    assert {"models/base-xl@1", "adapters/mara-xl@1", "adapters/ink-style@1", "characters/mara@2",
            "shots/sq030_sh0050/main@1"} <= set(titles)
    assert [t.split(" ")[0] for t in boxes["group"]] == [f"shots/sq030_sh{n * 10:04d}/main@1" for n in range(1, 5)]
    labels = [text for text, _ in boxes["labels"]]
    assert {"continuity", "base_model", "concept_art", "adapter", "adapter ×4", "base_model ×4", "training_data"} \
        <= set(labels), labels
    assert len(boxes["nodes"]) >= 8 and len(labels) >= 10
    for i, (text, box) in enumerate(boxes["labels"]):
        assert box[2] - box[0] > 10, f"label {text!r} is not drawn"
        for other, other_box in boxes["labels"][i + 1:]:
            assert not overlap(box, other_box), f"label {text!r} overlaps label {other!r}: {box} {other_box}"
        for node in boxes["nodes"]:
            assert not overlap(box, node), f"label {text!r} overlaps a node: {box} {node}"
        back = boxes["backs"][i]
        assert back[0] <= box[0] and box[2] <= back[2], f"label {text!r} is wider than its background"
    for (name, box), rect in zip(boxes["names"], boxes["rects"]):
        assert box[2] <= rect[2], f"node name {name!r} runs out of its box"
    print("lineage screenshot:", tmp_path / "lineage-continuity-chain.png")
