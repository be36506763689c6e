"""Permission symmetry: walk every operation of the OpenAPI schema and prove, against the running server,
that

- every operation declares a role (or is one of the few public ones), and that role is what the
  server enforces: each role below it gets 403 and writes nothing, each role at or above it gets in;
- a collection and its items demand the same role, and an item is reachable exactly when the
  collection lists it;
- no token, an unknown, expired or revoked token gets 401 (a review page: the login form);
- a token of project B reads and writes nothing of project A, whatever its role and whatever the
  route: A's codes and ids answer 404 exactly like ones that never existed, and nothing changes.

A new route fails `test_every_operation_is_known` until REQUESTS says how to call it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable

import pytest

from backlot import access
from backlot.access import webhooks
from backlot.db.engine import session_scope
from tests.api.conftest import ROLES, Production, engine_for, table_counts

RANK = {role: i for i, role in enumerate(ROLES)}


@dataclass
class Call:
    path: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] | None = None
    json: Any = None
    data: dict[str, Any] | None = None
    files: list | None = None
    prepare: Callable[[Production, Any], dict[str, Any]] | None = None  # extra path params, made fresh per call


def new_subscriber(prod: Production, settings) -> dict[str, Any]:
    with session_scope(engine_for(settings)) as s:
        sub, _ = webhooks.subscribe(s, prod.code, "http://127.0.0.1:9/hook", actor="tests")
    return {"subscriber_id": sub.id}


def with_subscriber(calls: dict[tuple[str, str], Call], subscriber_id: int) -> dict[tuple[str, str], Call]:
    """The same calls, addressing one existing subscriber instead of making one per call."""
    return {key: Call(path={**c.path, "subscriber_id": subscriber_id}, params=c.params, json=c.json, data=c.data,
                      files=c.files) if c.prepare else c for key, c in calls.items()}


def requests_for(prod: Production) -> dict[tuple[str, str], Call]:
    """How to call each operation on this production: valid requests, so only access decides the answer."""
    shot_v = prod.vid("shots/sq010_sh0020/main@1")
    brief = prod.sha["refs/brief@1/brief.txt"]
    v = {"version_id": shot_v}
    P = "/api/projects/{project}"
    return {
        ("GET", "/api/token"): Call(),
        ("GET", "/api/projects"): Call(),
        ("GET", P): Call(),
        ("PATCH", P): Call(json={"stale_policy": "approved"}),
        ("GET", P + "/sequences"): Call(),
        ("GET", P + "/sequences/{sequence}"): Call(path={"sequence": "sq010"}),
        ("GET", P + "/shots"): Call(params={"sequence": "sq010"}),
        ("GET", P + "/shots/{shot}"): Call(path={"shot": "sq010_sh0020"}),
        ("GET", P + "/assets"): Call(),
        ("GET", P + "/assets/{asset}"): Call(path={"asset": "refs/brief"}),
        ("GET", P + "/stale"): Call(),
        ("GET", P + "/regeneration"): Call(),
        ("POST", P + "/regeneration"): Call(),
        ("GET", P + "/events"): Call(),
        ("GET", P + "/contact-sheet"): Call(),
        ("GET", P + "/versions"): Call(),
        ("POST", P + "/versions"): Call(data={"asset": "refs/uploads", "kind": "reference"},
                                        files=[("files", ("upload.txt", b"uploaded", "text/plain"))]),
        ("GET", P + "/versions/{version_id}"): Call(path=v),
        ("GET", P + "/refs/{ref}"): Call(path={"ref": "refs/brief@1"}),
        ("GET", P + "/versions/{version_id}/inputs"): Call(path=v, params={"transitive": True}),
        ("GET", P + "/versions/{version_id}/outputs"): Call(path=v),
        ("GET", P + "/versions/{version_id}/notes"): Call(path=v),
        ("POST", P + "/versions/{version_id}/notes"): Call(path=v, json={"body": "a note"}),
        ("POST", P + "/versions/{version_id}/approve"): Call(path=v, json={"note": "ok"}),
        ("POST", P + "/versions/{version_id}/reject"): Call(path=v, json={"note": "not ok"}),
        ("GET", P + "/versions/{version_id}/rights"): Call(path={"version_id": prod.vid("characters/mara@1")}),
        ("PUT", P + "/versions/{version_id}/rights"): Call(path={"version_id": prod.vid("characters/mara@1")},
                                                          json={"owner": "Jo", "licence": "freelance", "consent": "yes"}),
        ("GET", P + "/media/{sha256}"): Call(path={"sha256": brief}),
        ("HEAD", P + "/media/{sha256}"): Call(path={"sha256": brief}),
        ("GET", P + "/webhooks"): Call(),
        ("POST", P + "/webhooks"): Call(json={"url": "http://127.0.0.1:9/hook", "event_kinds": ["status_changed"]}),
        ("GET", P + "/webhooks/{subscriber_id}"): Call(prepare=new_subscriber),
        ("DELETE", P + "/webhooks/{subscriber_id}"): Call(prepare=new_subscriber),
        ("GET", P + "/webhooks/{subscriber_id}/deliveries"): Call(prepare=new_subscriber),
        ("GET", "/review"): Call(),
        ("GET", "/review/{project}"): Call(),
        ("GET", "/review/{project}/sequences/{sequence}"): Call(path={"sequence": "sq010"}),
        ("GET", "/review/{project}/shots"): Call(),
        ("GET", "/review/{project}/shots/{shot}"): Call(path={"shot": "sq010_sh0020"}),
        # public
        ("GET", "/healthz"): Call(),
        ("GET", "/review/login"): Call(),
        ("POST", "/review/login"): Call(data={"token": "blt_" + "x" * 43}),
        ("POST", "/review/logout"): Call(),
        ("GET", "/review/static/{name}"): Call(path={"name": "review.js"}),
    }


@pytest.fixture(scope="module")
def schema(live):
    import httpx

    return httpx.get(live.base_url + "/openapi.json").json()


def operations(schema) -> list[tuple[str, str, str]]:
    return [(method.upper(), path, op.get("x-backlot-role"))
            for path, ops in schema["paths"].items() for method, op in ops.items()]


def send(client, method: str, template: str, prod: Production, call: Call, settings, project: str | None = None):
    params = {"project": project or prod.code, **call.path}
    if call.prepare:
        params |= call.prepare(prod, settings)
    url = re.sub(r"\{(\w+)\}", lambda m: str(params[m.group(1)]), template)
    return client.request(method, url, params=call.params, json=call.json, data=call.data, files=call.files,
                          follow_redirects=False)


def is_write(method: str) -> bool:
    return method not in ("GET", "HEAD")


def test_every_operation_is_known(schema, production):
    ops = operations(schema)
    known = requests_for(production)
    assert {(m, p) for m, p, _ in ops} == set(known), "REQUESTS must cover exactly the schema's operations"
    for method, path, role in ops:
        assert role in (*ROLES, "public"), f"{method} {path} declares no role"
    public = {(m, p) for m, p, r in ops if r == "public"}
    assert public == {("GET", "/healthz"), ("GET", "/review/login"), ("POST", "/review/login"),
                      ("POST", "/review/logout"), ("GET", "/review/static/{name}")}


def test_collections_and_items_demand_the_same_role(schema):
    roles = {(m, p): r for m, p, r in operations(schema)}
    pairs = 0
    for (method, path), role in roles.items():
        parent = re.sub(r"/\{[^}]+\}$", "", path)
        if method == "GET" and parent != path and ("GET", parent) in roles and "{" in path.rsplit("/", 1)[-1]:
            assert roles[("GET", parent)] == role, f"{parent} needs {roles[('GET', parent)]}, {path} needs {role}"
            pairs += 1
    assert pairs >= 7  # projects, sequences, shots, assets, versions, webhooks, review shots


def test_each_role_gets_exactly_what_its_operation_declares(live, schema, production):
    calls = requests_for(production)
    for method, path, role in operations(schema):
        if role == "public":
            continue
        for holder in ROLES:
            before = table_counts(live.settings) if is_write(method) else None
            with live.client(production.tokens[holder]) as c:
                response = send(c, method, path, production, calls[(method, path)], live.settings)
            allowed = RANK[holder] >= RANK[role]
            if allowed:
                assert response.status_code < 400, (method, path, holder, response.status_code, response.text)
            else:
                assert response.status_code == 403, (method, path, holder, response.status_code, response.text)
                assert role in response.json()["error"]
                if before is not None and calls[(method, path)].prepare is None:
                    assert table_counts(live.settings) == before, f"{method} {path} as {holder} wrote something"


def test_no_valid_token_no_access(live, schema, production):
    """No token, a malformed, unknown, expired or revoked one: 401 everywhere (review pages: the login form)."""
    with session_scope(engine_for(live.settings)) as s:
        expired = access.create_token(s, production.code, "admin", name="expired",
                                      expires=timedelta(seconds=1))
        revoked = access.create_token(s, production.code, "admin", name="revoked")
        access.revoke_token(s, revoked.record.id)
        s.execute(__import__("sqlalchemy").text("UPDATE api_tokens SET expires_at = now() - interval '1 hour' "
                                                "WHERE id = :i"), {"i": expired.record.id})
    bad = {None: "no API token", "nonsense": "malformed", "blt_" + "A" * 43: "unknown API token",
           expired.secret: "expired", revoked.secret: "revoked"}
    calls = with_subscriber(requests_for(production), new_subscriber(production, live.settings)["subscriber_id"])
    before = table_counts(live.settings)
    for method, path, role in operations(schema):
        if role == "public":
            continue
        for secret, why in bad.items():
            with live.client(secret) as c:
                response = send(c, method, path, production, calls[(method, path)], live.settings)
            if path.startswith("/review"):
                assert response.status_code == 303 and "/review/login" in response.headers["location"], (path, why)
            else:
                assert response.status_code == 401, (method, path, why, response.text)
                assert response.headers["www-authenticate"].startswith("Bearer")
                if method != "HEAD":
                    assert why in response.json()["error"], (method, path, response.json())
    assert table_counts(live.settings) == before


def test_a_token_for_one_project_reaches_nothing_of_another(live, schema, production, other):
    """Tokens of `other` (every role, admin included) against `production`'s routes and ids."""
    a, b = production, other
    a_subscriber = new_subscriber(a, live.settings)["subscriber_id"]
    calls_a = with_subscriber(requests_for(a), a_subscriber)
    before = table_counts(live.settings)
    for method, path, role in operations(schema):
        if role == "public":
            continue
        call = calls_a[(method, path)]
        for holder in ROLES:
            with live.client(b.tokens[holder]) as c:
                if "{project}" in path:
                    # A's project in the path: 404, the same answer as for a project that does not exist.
                    response = send(c, method, path, a, call, live.settings)
                    assert response.status_code == 404, (method, path, holder, response.status_code)
                    ghost = send(c, method, path, a, call, live.settings, project="no_such_project")
                    assert ghost.status_code == 404
                    if method != "HEAD" and not path.startswith("/review"):
                        assert response.json()["error"].replace(a.code, "X") == \
                            ghost.json()["error"].replace("no_such_project", "X")
                else:
                    response = send(c, method, path, b, call, live.settings)
                    assert a.code not in response.text
    # Ids of A's objects under B's own project: not found either.
    with live.client(b.tokens["admin"]) as c:
        for template, params in [
            ("/api/projects/{p}/versions/{v}", {"v": a.vid("shots/sq010_sh0020/main@1")}),
            ("/api/projects/{p}/versions/{v}/inputs", {"v": a.vid("shots/sq010_sh0020/main@1")}),
            ("/api/projects/{p}/versions/{v}/notes", {"v": a.vid("shots/sq010_sh0020/main@1")}),
            ("/api/projects/{p}/media/{v}", {"v": a.sha["refs/brief@1/brief.txt"]}),
            ("/api/projects/{p}/webhooks/{v}", {"v": a_subscriber}),
        ]:
            assert c.get(template.format(p=b.code, **params)).status_code == 404, template
        for path, body in [(f"/api/projects/{b.code}/versions/{a.vid('shots/sq010_sh0020/main@1')}/approve", {}),
                           (f"/api/projects/{b.code}/versions/{a.vid('shots/sq010_sh0020/main@1')}/notes",
                            {"body": "x"})]:
            assert c.post(path, json=body).status_code == 404
        publish = c.post(f"/api/projects/{b.code}/versions", data={"asset": "x/y", "kind": "reference",
                                                                   "inputs": [f"training_data={a.code}/refs/brief@1"]},
                         files=[("files", ("f.txt", b"f", "text/plain"))])
        assert publish.status_code == 404, publish.text  # an input of A cannot be named from B
    assert table_counts(live.settings) == before, "a token of another project changed something"


LISTS = [  # collection, item template, how an item is named in the item path
    ("/api/projects/{p}/sequences", "/api/projects/{p}/sequences/{k}", "code"),
    ("/api/projects/{p}/shots", "/api/projects/{p}/shots/{k}", "code"),
    ("/api/projects/{p}/assets", "/api/projects/{p}/assets/{k}", "name"),
    ("/api/projects/{p}/versions", "/api/projects/{p}/versions/{k}", "id"),
    ("/api/projects/{p}/webhooks", "/api/projects/{p}/webhooks/{k}", "id"),
]


def test_what_a_list_shows_its_item_route_serves_and_nothing_else(live, production, other):
    a, b = production, other
    new_subscriber(a, live.settings)
    new_subscriber(b, live.settings)
    with live.client(a.tokens["admin"]) as c, live.client(b.tokens["admin"]) as cb:
        for collection, item, key in LISTS:
            mine = c.get(collection.format(p=a.code), params={"limit": 500}).json()
            theirs = cb.get(collection.format(p=b.code), params={"limit": 500}).json()
            assert mine["items"] and mine["total"] == len(mine["items"])
            for entry in mine["items"]:
                assert c.get(item.format(p=a.code, k=entry[key])).status_code == 200, (item, entry[key])
            mine_keys = {e[key] for e in mine["items"]}
            for entry in theirs["items"]:
                if entry[key] in mine_keys:
                    continue  # the same code or name exists in both projects: each sees its own
                assert c.get(item.format(p=a.code, k=entry[key])).status_code == 404, (item, entry[key])
            if key == "id":
                assert mine_keys.isdisjoint({e[key] for e in theirs["items"]})
