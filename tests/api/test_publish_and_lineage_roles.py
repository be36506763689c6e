"""The API's publish of identical content (200 and `reused`), and lineage walks by role."""

from __future__ import annotations

from sqlalchemy import text

from tests.api.conftest import engine_for


def events(live, production) -> int:
    with engine_for(live.settings).connect() as conn:
        return conn.execute(text("SELECT count(*) FROM events e JOIN projects p ON p.id = e.project_id "
                                 "WHERE p.code = :c"), {"c": production.code}).scalar()


def test_identical_publish_answers_200_with_the_existing_version(live, production):
    p = production.code
    form = {"asset": "refs/board", "kind": "reference", "inputs": ["concept_art=characters/mara@1"],
            "metadata": '{"take": 1}'}
    files = [("files", ("board.png", b"board", "image/png"))]
    with live.client(production.tokens["artist"]) as c:
        created = c.post(f"/api/projects/{p}/versions", data=form, files=files)
        assert created.status_code == 201, created.text
        assert created.json()["reused"] is False and created.json()["number"] == 1
        before = events(live, production)

        same = c.post(f"/api/projects/{p}/versions", data=form, files=files)
        assert same.status_code == 200, same.text
        assert (same.json()["reused"], same.json()["id"], same.json()["number"]) == (True, created.json()["id"], 1)
        assert events(live, production) == before, "no event, so no webhook either"
        assert c.get(f"/api/projects/{p}/versions/{created.json()['id']}").json()["reused"] is False

        other = c.post(f"/api/projects/{p}/versions", data=form | {"metadata": '{"take": 2}'}, files=files)
        assert (other.status_code, other.json()["number"], other.json()["reused"]) == (201, 2, False)
        forced = c.post(f"/api/projects/{p}/versions", data=form | {"metadata": '{"take": 2}', "new_version": "true"},
                        files=files)
        assert (forced.status_code, forced.json()["number"]) == (201, 3)
        bad = c.post(f"/api/projects/{p}/versions", data=form | {"new_version": "perhaps"}, files=files)
        assert bad.status_code == 422 and "new_version" in bad.json()["error"]


def test_identical_publish_asking_another_status_keeps_the_status(live, production):
    p = production.code
    form = {"asset": "refs/brief", "status": "approved"}  # refs/brief@1 is wip
    files = [("files", ("brief.txt", f"brief for {p}".encode(), "text/plain"))]
    with live.client(production.tokens["supervisor"]) as c:
        same = c.post(f"/api/projects/{p}/versions", data=form, files=files)
        assert same.status_code == 200, same.text
        assert (same.json()["reused"], same.json()["number"], same.json()["status"]) == (True, 1, "wip")


def test_lineage_routes_take_roles(live, production):
    p, take2 = production.code, production.vid("shots/sq010_sh0010/main@2")
    take1 = production.vid("shots/sq010_sh0010/main@1")
    url = f"/api/projects/{p}/versions/{take2}/inputs"
    with live.client(production.tokens["viewer"]) as c:
        default = c.get(url, params={"transitive": True, "limit": 500}).json()["items"]
        assert {(e["role"], e["input"]) for e in default} == {
            ("adapter", f"{p}/adapters/mara@1"), ("concept_art", f"{p}/characters/mara@1"),
            ("training_data", f"{p}/characters/mara@1")}
        history = c.get(url, params={"roles": "regenerated_from"}).json()["items"]
        assert [(e["version"], e["input"]) for e in history] == [(f"{p}/shots/sq010_sh0010/main@2",
                                                                  f"{p}/shots/sq010_sh0010/main@1")]
        two = c.get(url, params=[("roles", "adapter"), ("roles", "training_data"), ("transitive", "true")]).json()
        assert {e["role"] for e in two["items"]} == {"adapter", "training_data"}
        down = f"/api/projects/{p}/versions/{take1}/outputs"
        assert {e["version"] for e in c.get(down).json()["items"]} == {f"{p}/shots/sq010_sh0020/main@1"}
        assert [e["version"] for e in c.get(down, params={"roles": "regenerated_from"}).json()["items"]] == [
            f"{p}/shots/sq010_sh0010/main@2"]
        bad = c.get(url, params={"roles": "sidekick"})
        assert bad.status_code == 422
        assert "roles" in bad.json()["error"] and "regenerated_from" in bad.json()["error"]
