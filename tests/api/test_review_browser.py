"""The review page in a real browser (Debian's Chromium, headless, driven by Playwright) against the
running API: log in, read the contact sheet, watch and seek the preview, approve with a note, and
find the approval in the database. A screenshot proves the thumbnails are drawn."""

from __future__ import annotations

import shutil
from typing import Iterator

import pytest
from sqlalchemy import text

from tests.api.conftest import COLOURS, engine_for
from tests.api.images import Image, close

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
    requests_outside = []
    page.on("request", lambda r: requests_outside.append(r.url) if not r.url.startswith(live.base_url) else None)
    yield page
    context.close()
    assert requests_outside == [], "the review page must not reach the network"


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


def test_login_refuses_bad_and_revoked_tokens(page, live, production):
    page.goto("/review/login")
    page.fill("input[name=token]", "blt_" + "x" * 43)
    page.click("button[type=submit]")
    assert "unknown API token" in page.inner_text(".alert")

    log_in(page, production.tokens["viewer"])
    from backlot import access
    from backlot.db.engine import session_scope

    with session_scope(engine_for(live.settings)) as s:
        token = next(t for t in access.list_tokens(s, production.code) if t.name == "viewer-bot")
        access.revoke_token(s, token.id)
    page.goto(f"/review/{production.code}")
    assert "/review/login" in page.url and "revoked" in page.inner_text(".alert")
