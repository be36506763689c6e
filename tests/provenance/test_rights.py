"""Rights at publish (`backlot publish --owner --licence --consent`) and over HTTP (read: viewer, set: supervisor)."""

from __future__ import annotations

import json

import backlot
from backlot import provenance
from tests.provenance.conftest import api_client, make_art


def assets(s) -> set[str]:
    return {a.name for a in backlot.list_assets(s, "film")}


def test_publish_records_rights_in_the_same_transaction(production, run):
    tmp = production["tmp"]
    sheet = make_art(tmp / "ovid.png", 2)
    publish = ("publish", "film", "characters/ovid", sheet, "--kind", "concept_art")
    # bad rights input: one line, exit 2, nothing published
    partial = run(*publish, "--owner", "Jo Artist", code=2).stderr.strip()
    assert "\n" not in partial and "add --licence, --consent" in partial
    assert "--consent 'maybe'" in run(*publish, "--owner", "Jo", "--licence", "x", "--consent", "maybe", code=2).stderr
    with backlot.session() as s:
        assert "characters/ovid" not in assets(s)
    done = json.loads(run(*publish, "--owner", "Jo Artist", "--licence", "freelance, 2026", "--consent", "yes",
                          "--json").stdout)
    with backlot.session() as s:
        rights = provenance.get_rights(s, done["id"])
    assert (rights.owner, rights.licence, rights.consent, rights.set_by) == ("Jo Artist", "freelance, 2026", "yes",
                                                                            "tester")
    # the same files again: the version is kept; the same rights add nothing, new ones are recorded
    run(*publish, "--owner", "Jo Artist", "--licence", "freelance, 2026", "--consent", "yes")
    run(*publish, "--owner", "Jo Artist", "--licence", "freelance, 2026", "--consent", "no")
    history = json.loads(run("rights", "show", done["ref"], "--json").stdout)
    assert [r["consent"] for r in history] == ["yes", "no"]
    # rights on a kind that carries none: refused, and the version is not published either
    weights = tmp / "weights.bin"
    weights.write_bytes(b"w" * 10)
    refused = run("publish", "film", "adapters/raw", weights, "--kind", "adapter", "--owner", "x", "--licence", "y",
                  "--consent", "yes", code=2).stderr
    assert "rights are recorded on concept art" in refused
    with backlot.session() as s:
        assert "adapters/raw" not in assets(s)


def test_rights_over_http_read_by_viewers_set_by_supervisors(production):
    with backlot.session() as s:
        art = backlot.get_version(s, production["art"])
        base = backlot.get_version(s, production["base"])
    url = f"/api/projects/film/versions/{art.id}/rights"
    body = {"owner": "Jo Artist", "licence": "freelance", "consent": "yes", "note": "contract 12"}
    viewer, _ = api_client("viewer")
    artist, _ = api_client("artist")
    supervisor, _ = api_client("supervisor")
    with viewer, artist, supervisor:
        assert viewer.get(url).json() == {"version_id": art.id, "current": None, "history": []}
        assert viewer.put(url, json=body).status_code == 403
        assert artist.put(url, json=body).status_code == 403
        assert supervisor.put(url, json={**body, "consent": "maybe"}).status_code == 422
        set_ = supervisor.put(url, json=body)
        assert set_.status_code == 200 and set_.json()["set_by"] == "supervisor-bot"
        supervisor.put(url, json={**body, "consent": "no"})
        read = viewer.get(url).json()
        assert [r["consent"] for r in read["history"]] == ["yes", "no"] and read["current"]["consent"] == "no"
        assert read["current"]["note"] == "contract 12"
        base_url = f"/api/projects/film/versions/{base.id}/rights"
        assert supervisor.put(base_url, json={**body, "licence": "OpenRAIL-M"}).status_code == 200
        with backlot.session() as s:
            adapter = backlot.publish_version(s, "film", "adapters/raw", [production["tmp"] / "mara.png"],
                                              kind="adapter")
        wrong = supervisor.put(f"/api/projects/film/versions/{adapter.id}/rights", json=body)
        assert wrong.status_code == 400 and "rights are recorded on concept art" in wrong.json()["error"]
        assert viewer.get("/api/projects/film/versions/999999/rights").status_code == 404
    with backlot.session() as s:
        assert provenance.get_rights(s, art.id).consent == "no"  # what training clearance reads
        assert provenance.get_rights(s, base.id).licence == "OpenRAIL-M"
