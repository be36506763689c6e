"""The API's routes against a real server and database: what a script or another service sees."""

from __future__ import annotations

from tests.api.conftest import COLOURS


def test_token_and_project(live, production):
    with live.client(production.tokens["viewer"]) as c:
        assert c.get("/api/token").json() == {"project": production.code, "role": "viewer", "name": "viewer-bot"}
        projects = c.get("/api/projects").json()
        assert [p["code"] for p in projects["items"]] == [production.code] and projects["total"] == 1
        project = c.get(f"/api/projects/{production.code}").json()
        assert project["fps"] == "24/1" and project["stale_policy"] == "approved"


def test_sequences_and_shots_in_editorial_order(live, production):
    p = production.code
    with live.client(production.tokens["viewer"]) as c:
        seqs = c.get(f"/api/projects/{p}/sequences").json()
        assert [(s["code"], s["shot_count"]) for s in seqs["items"]] == [("sq010", 4), ("sq020", 1)]
        assert c.get(f"/api/projects/{p}/sequences/sq020").json()["shot_count"] == 1
        shots = c.get(f"/api/projects/{p}/shots").json()
        assert [s["code"] for s in shots["items"]] == list(COLOURS)
        assert [s["editorial_order"] for s in shots["items"]] == [1, 2, 3, 4, 5]
        page = c.get(f"/api/projects/{p}/shots", params={"sequence": "sq010", "limit": 2, "offset": 1}).json()
        assert [s["code"] for s in page["items"]] == ["sq010_sh0020", "sq010_sh0030"] and page["total"] == 4
        shot = c.get(f"/api/projects/{p}/shots/sq010_sh0010").json()
        assert shot["cut_in"] == 1001 and shot["cut_out"] == 1024 and shot["handles"] == 4
        assert [a["name"] for a in shot["assets"]] == ["shots/sq010_sh0010/main"]


def test_assets_and_versions(live, production):
    p = production.code
    with live.client(production.tokens["viewer"]) as c:
        assets = c.get(f"/api/projects/{p}/assets", params={"kind": "concept_art"}).json()
        assert [(a["name"], a["latest_number"], a["approved_number"]) for a in assets["items"]] == [
            ("characters/mara", 2, 2)]
        assert c.get(f"/api/projects/{p}/assets/adapters/mara").json()["kind"] == "adapter"
        listed = c.get(f"/api/projects/{p}/versions", params={"asset": "shots/sq010_sh0010/main"}).json()
        assert [v["number"] for v in listed["items"]] == [2, 1]  # newest first
        one = c.get(f"/api/projects/{p}/versions/{production.vid('adapters/mara@1')}").json()
        assert one["ref"] == f"{p}/adapters/mara@1" and one["recipe"] == {"rank": 8, "seed": 1}
        assert one["inputs"] == [{"role": "training_data", "ref": f"{p}/characters/mara@1",
                                  "version_id": production.vid("characters/mara@1")}]
        assert one["files"][0]["url"] == f"/api/projects/{p}/media/{one['files'][0]['sha256']}"
        resolved = c.get(f"/api/projects/{p}/refs/characters/mara@approved").json()
        assert resolved["number"] == 2
        review = c.get(f"/api/projects/{p}/versions", params={"status": "review", "shot": "sq010_sh0010"}).json()
        assert review["total"] == 2


def test_lineage_inputs_and_outputs(live, production):
    p, shot4 = production.code, production.vid("shots/sq010_sh0040/main@1")
    with live.client(production.tokens["viewer"]) as c:
        direct = c.get(f"/api/projects/{p}/versions/{shot4}/inputs").json()["items"]
        assert {(e["role"], e["input"]) for e in direct} == {
            ("adapter", f"{p}/adapters/mara@1"), ("concept_art", f"{p}/characters/mara@1"),
            ("continuity", f"{p}/shots/sq010_sh0030/main@1")}
        chain = c.get(f"/api/projects/{p}/versions/{shot4}/inputs", params={"transitive": True, "limit": 500}).json()
        assert max(e["depth"] for e in chain["items"]) == 4  # back through sh0030, sh0020 to sh0010's inputs
        art1 = production.vid("characters/mara@1")
        down = c.get(f"/api/projects/{p}/versions/{art1}/outputs", params={"transitive": True, "limit": 500}).json()
        assert f"{p}/shots/sq020_sh0010/main@1" in {e["version"] for e in down["items"]}


def test_stale_set_with_reasons(live, production):
    p = production.code
    with live.client(production.tokens["viewer"]) as c:
        stale = c.get(f"/api/projects/{p}/stale").json()
        refs = {s["ref"]: s["reason"] for s in stale["items"]}
        assert f"{p}/adapters/mara@1" in refs
        assert refs[f"{p}/adapters/mara@1"]["superseded_by"] == f"{p}/characters/mara@2"
        assert f"{p}/shots/sq010_sh0040/main@1" in refs
        shots_only = c.get(f"/api/projects/{p}/stale", params={"kind": "shot_render"}).json()
        assert {s["kind"] for s in shots_only["items"]} == {"shot_render"} and shots_only["total"] == 5


def test_events_page_by_cursor(live, production):
    p = production.code
    with live.client(production.tokens["viewer"]) as c:
        first = c.get(f"/api/projects/{p}/events", params={"limit": 3}).json()
        assert [e["kind"] for e in first["items"]][:1] == ["project_created"]
        rest = c.get(f"/api/projects/{p}/events", params={"after": first["next_after"], "limit": 500}).json()
        assert rest["items"][0]["id"] > first["items"][-1]["id"]
        created = c.get(f"/api/projects/{p}/events", params={"kind": "status_changed"}).json()["items"]
        assert created[-1]["version"] == f"{p}/characters/mara@2" and created[-1]["payload"]["status"] == "approved"


def test_review_notes_approve_reject(live, production):
    p, v = production.code, production.vid("shots/sq010_sh0020/main@1")
    with live.client(production.tokens["supervisor"]) as c:
        note = c.post(f"/api/projects/{p}/versions/{v}/notes", json={"body": "the hands drift at 1012"})
        assert note.status_code == 201 and note.json()["author"] == "supervisor-bot"
        rejected = c.post(f"/api/projects/{p}/versions/{v}/reject", json={"note": "redo the hands"})
        assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
        approved = c.post(f"/api/projects/{p}/versions/{v}/approve", json={"note": "better"})
        assert approved.json()["status"] == "approved"
        assert c.post(f"/api/projects/{p}/versions/{v}/approve").json()["status"] == "approved"  # no body: no note
        notes = c.get(f"/api/projects/{p}/versions/{v}/notes").json()["items"]
        assert [(n["body"], n["status_change"]) for n in notes] == [
            ("the hands drift at 1012", None), ("redo the hands", "rejected"), ("better", "approved")]


def test_contact_sheet_data(live, production):
    p = production.code
    with live.client(production.tokens["viewer"]) as c:
        sheet = c.get(f"/api/projects/{p}/contact-sheet", params={"sequence": "sq010"}).json()
    items = {i["shot"]["code"]: i for i in sheet["items"]}
    assert list(items) == ["sq010_sh0010", "sq010_sh0020", "sq010_sh0030", "sq010_sh0040"]
    assert items["sq010_sh0010"]["number"] == 2 and items["sq010_sh0010"]["stale"] is True
    assert items["sq010_sh0010"]["thumbnail"].endswith(production.sha["shots/sq010_sh0010/main@2/thumbnail.png"])
    assert items["sq010_sh0030"]["thumbnail"] is None  # only an EXR frame: the page shows a placeholder
    assert items["sq010_sh0020"]["status"] == "review"


def test_publish_by_upload(live, production):
    p = production.code
    with live.client(production.tokens["artist"]) as c:
        response = c.post(f"/api/projects/{p}/versions", data={
            "asset": "characters/ovid", "kind": "concept_art", "inputs": ["init_image=characters/mara@1"],
            "recipe": '{"seed": 4}', "metadata": '{"artist": "kim"}'},
            files=[("files", ("sheets/front.png", b"front", "image/png")), ("files", ("back.png", b"back", "image/png"))])
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["ref"] == f"{p}/characters/ovid@1" and body["created_by"] == "artist-bot"
        assert sorted(f["path"] for f in body["files"]) == ["back.png", "sheets/front.png"]
        assert body["inputs"][0]["ref"] == f"{p}/characters/mara@1" and body["recipe"] == {"seed": 4}
        front = next(f for f in body["files"] if f["path"] == "sheets/front.png")
        assert c.get(front["url"]).content == b"front"


def test_favicon_is_served_and_linked(live):
    with live.client() as c:
        ico = c.get("/favicon.ico")
        assert ico.status_code == 200 and ico.headers["content-type"] == "image/vnd.microsoft.icon"
        assert ico.content[:4] == b"\x00\x00\x01\x00" and int.from_bytes(ico.content[4:6], "little") >= 2  # ICO, sizes
        svg = c.get("/review/static/favicon.svg")
        assert svg.status_code == 200 and svg.headers["content-type"] == "image/svg+xml"
        assert svg.text.startswith("<svg") and "viewBox" in svg.text
        login = c.get("/review/login").text
        assert '<link rel="icon" href="/review/static/favicon.svg" type="image/svg+xml">' in login
        assert c.get("/review/static/favicon.ico").status_code in (404, 422)  # only what STATIC names


def test_login_page_speaks_to_a_person(live, production):
    """Nothing technical before the reviewer acts; an ended sign-in says so; a link cannot put words on the page."""
    with live.client() as c:
        first = c.get(f"/review/{production.code}/shots/sq010_sh0020", follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"] == "/review/login"
        page = c.get("/review/login").text
        assert 'role="alert"' not in page and "Bearer" not in page and "no API token" not in page
        assert "Sign in" in page and 'name="token"' in page
        crafted = c.get("/review/login", params={"reason": "Your account is locked: call 555-0100"}).text
        assert "555-0100" not in crafted and 'role="alert"' not in crafted
        refused = c.post("/review/login", data={"token": "blt_" + "A" * 43})
        assert refused.status_code == 401 and "not accepted" in refused.text and "Bearer" not in refused.text
    with live.client(cookies={"backlot_token": "blt_" + "A" * 43}) as c:
        ended = c.get(f"/review/{production.code}", follow_redirects=False)
        assert ended.status_code == 303 and ended.headers["location"] == "/review/login?reason=ended"
        assert "sign-in has ended" in c.get(ended.headers["location"]).text
