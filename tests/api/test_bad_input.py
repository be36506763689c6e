"""Bad input over HTTP: a 4xx with one clear message, never a 500, and nothing written."""

from __future__ import annotations

import os

import pytest

from tests.api.conftest import UPLOAD_LIMIT, table_counts


@pytest.fixture
def unchanged(live):
    """Asserts at the end of the test that no table changed and the store got no new object."""
    store = live.settings.backlot.store_url
    before = (table_counts(live.settings), _objects(store))
    yield
    assert (table_counts(live.settings), _objects(store)) == before, "a refused request wrote something"


def _objects(root: str) -> int:
    return sum(len(files) for _, _, files in os.walk(os.path.join(root, "objects")))


def error(response, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert isinstance(body["error"], str) and body["error"]
    return body["error"]


def test_malformed_json_and_wrong_types(live, production, unchanged):
    p, v = production.code, production.vid("shots/sq010_sh0020/main@1")
    with live.client(production.tokens["admin"]) as c:
        assert "not valid JSON" in error(c.post(f"/api/projects/{p}/versions/{v}/notes", content=b'{"body": "x"',
                                                headers={"Content-Type": "application/json"}), 400)
        assert "body" in error(c.post(f"/api/projects/{p}/versions/{v}/notes", json={"body": 5}), 422)
        assert "body" in error(c.post(f"/api/projects/{p}/versions/{v}/notes", json=["a list"]), 422)
        assert "by" in error(c.post(f"/api/projects/{p}/versions/{v}/notes", json={"body": "x", "by": "me"}), 422)
        assert "stale_policy" in error(c.patch(f"/api/projects/{p}", json={"stale_policy": "sometimes"}), 422)
        assert "limit" in error(c.get(f"/api/projects/{p}/shots", params={"limit": "many"}), 422)
        assert "limit" in error(c.get(f"/api/projects/{p}/shots", params={"limit": 10_000}), 422)
        assert "kind" in error(c.get(f"/api/projects/{p}/assets", params={"kind": "spaceship"}), 422)
        assert "note" in error(c.post(f"/api/projects/{p}/versions/{v}/reject", json={}), 422)
        assert "what is wrong" in error(c.post(f"/api/projects/{p}/versions/{v}/reject", json={"note": "   "}), 422)
        assert "control characters" in error(c.post(f"/api/projects/{p}/versions/{v}/notes",
                                                    json={"body": "nul \x00 byte"}), 422)
        assert "version_id" in error(c.get(f"/api/projects/{p}/versions/99999999999999999999999"), 422)
        assert "version_id" in error(c.get(f"/api/projects/{p}/versions/-3"), 422)
        assert "is invalid" in error(c.post(f"/api/projects/{p}/webhooks", json={"url": "ftp://x/y"}), 400)
        assert "unknown" in error(c.post(f"/api/projects/{p}/webhooks",
                                         json={"url": "http://127.0.0.1:9/", "event_kinds": ["moon_landed"]}), 400)
        assert "not allowed" in error(c.delete(f"/api/projects/{p}/shots"), 405)
        assert "no route" in error(c.get("/api/nothing/here"), 404)


def test_unknown_ids_and_names(live, production, unchanged):
    p = production.code
    with live.client(production.tokens["admin"]) as c:
        assert "no version 987654321" in error(c.get(f"/api/projects/{p}/versions/987654321"), 404)
        assert "no version" in error(c.post(f"/api/projects/{p}/versions/987654321/approve", json={}), 404)
        assert "no shot 'sq999_sh0010'" in error(c.get(f"/api/projects/{p}/shots/sq999_sh0010"), 404)
        assert "no sequence" in error(c.get(f"/api/projects/{p}/sequences/sq999"), 404)
        assert "no asset 'characters/nobody'" in error(c.get(f"/api/projects/{p}/assets/characters/nobody"), 404)
        assert "no version 7" in error(c.get(f"/api/projects/{p}/refs/characters/mara@7"), 404)
        assert "no webhook subscriber" in error(c.get(f"/api/projects/{p}/webhooks/4242"), 404)
        assert "no file" in error(c.get(f"/api/projects/{p}/media/{'0' * 64}"), 404)
        assert "no project" in error(c.get("/api/projects/elsewhere/shots"), 404)


def test_oversized_bodies(live, production, unchanged):
    p, v = production.code, production.vid("shots/sq010_sh0020/main@1")
    with live.client(production.tokens["admin"]) as c:
        big = {"body": "x" * (2 << 20)}
        assert "larger than" in error(c.post(f"/api/projects/{p}/versions/{v}/notes", json=big), 413)

        def chunks():  # no Content-Length: counted as it streams in
            for _ in range(40):
                yield b"x" * 65536

        response = c.post(f"/api/projects/{p}/versions/{v}/notes", content=chunks(),
                          headers={"Content-Type": "application/json"})
        assert "larger than" in error(response, 413)
        upload = c.post(f"/api/projects/{p}/versions", data={"asset": "plates/huge", "kind": "reference"},
                        files=[("files", ("plate.exr", b"\0" * (UPLOAD_LIMIT + 1), "image/x-exr"))])
        assert "larger than" in error(upload, 413)


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "frames/../../x.png", "a//b.png", ".", ""])
def test_path_traversal_in_file_names(live, production, unchanged, name):
    p = production.code
    with live.client(production.tokens["artist"]) as c:
        response = c.post(f"/api/projects/{p}/versions", data={"asset": "refs/evil", "kind": "reference"},
                          files=[("files", (name, b"payload", "text/plain"))])
    assert response.status_code in (400, 422), response.text
    assert response.json()["error"]


def test_path_traversal_in_paths_and_asset_names(live, production, unchanged):
    p = production.code
    with live.client(production.tokens["admin"]) as c:
        assert "invalid" in error(c.get(f"/api/projects/{p}/assets/characters/..%2F..%2Fetc"), 400)
        assert "invalid" in error(c.post(f"/api/projects/{p}/versions", data={"asset": "../outside", "kind": "reference"},
                                         files=[("files", ("a.txt", b"a", "text/plain"))]), 400)
        for path in (f"/api/projects/{p}/media/..%2F..%2F..%2Fetc%2Fpasswd",
                     "/review/static/..%2F..%2Fapp.py", "/review/static/..%2Fpages.py"):
            response = c.get(path)
            assert response.status_code in (404, 422), path  # review paths answer with an HTML error page
            assert "no route" in response.text or "invalid" in response.text, path
        missing = c.get("/review/static/secrets.js")
        assert missing.status_code == 404 and "no static file" in missing.text


def test_bad_publishes_write_nothing(live, production, unchanged):
    p = production.code
    with live.client(production.tokens["artist"]) as c:
        def publish(data, files=(("files", ("a.txt", b"new bytes", "text/plain")),)):
            return c.post(f"/api/projects/{p}/versions", data={"asset": "refs/new", "kind": "reference", **data},
                          files=list(files))

        assert "supervisor" in error(publish({"status": "approved"}), 403)
        assert "no asset 'characters/ghost'" in error(publish({"inputs": ["training_data=characters/ghost@1"]}), 404)
        assert "input role" in error(publish({"inputs": ["sidekick=characters/mara@1"]}), 400)
        assert "malformed" in error(publish({"inputs": ["characters/mara@1"]}), 400)
        assert "not valid JSON" in error(publish({"recipe": "{nope"}), 400)
        assert "JSON object" in error(publish({"metadata": "[1, 2]"}), 400)
        assert "kind" in error(publish({"kind": "spaceship"}), 422)
        assert error(c.post(f"/api/projects/{p}/versions", data={"asset": "refs/new"}), 422)  # no files
        two = [("files", ("same.txt", b"1", "text/plain")), ("files", ("same.txt", b"2", "text/plain"))]
        assert "both be stored" in error(publish({}, two), 400)


def test_expired_and_revoked_tokens_are_told_why(live, production):
    from datetime import timedelta

    from sqlalchemy import text

    from backlot import access
    from backlot.db.engine import session_scope
    from tests.api.conftest import engine_for

    with session_scope(engine_for(live.settings)) as s:
        soon = access.create_token(s, production.code, "admin", name="soon", expires=timedelta(minutes=5))
        s.execute(text("UPDATE api_tokens SET expires_at = now() - interval '1 minute' WHERE id = :i"),
                  {"i": soon.record.id})
        gone = access.create_token(s, production.code, "admin", name="gone")
        access.revoke_token(s, gone.record.prefix)
    with live.client(soon.secret) as c:
        assert "expired on" in error(c.get("/api/token"), 401)
    with live.client(gone.secret) as c:
        assert "was revoked on" in error(c.get("/api/token"), 401)
    with live.client() as c:
        assert "Bearer" in error(c.get("/api/token", headers={"Authorization": "Basic dXNlcjpwYXNz"}), 401)


def test_cookie_writes_need_the_csrf_header(live, production, unchanged):
    p, v = production.code, production.vid("shots/sq010_sh0020/main@1")
    with live.client(cookies={"backlot_token": production.tokens["supervisor"]}) as c:
        assert c.get(f"/api/projects/{p}/versions/{v}").status_code == 200  # reads are fine
        assert "X-Backlot-CSRF" in error(c.post(f"/api/projects/{p}/versions/{v}/approve", json={}), 403)
