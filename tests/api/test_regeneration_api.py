"""Regeneration through the HTTP API: the plan, and a request that is not queued twice."""

from __future__ import annotations

import backlot
from backlot.storage import Store
from backlot.db.engine import session_scope
from tests.api.conftest import engine_for


def test_the_plan_says_what_cannot_be_replayed(live, production):
    p = production.code
    with live.client(production.tokens["viewer"]) as c:
        plan = c.get(f"/api/projects/{p}/regeneration").json()
    by_asset = {i["asset"]: i for i in plan}
    # The fixture's adapter and shots carry no Backlot recipe: nothing can replay them.
    assert by_asset["adapters/mara"]["action"] == "manual"
    assert "made by people" in by_asset["adapters/mara"]["blocked"]
    shot = by_asset["shots/sq010_sh0040/main"]
    assert shot["waits_for"] == [by_asset["adapters/mara"]["key"]] or shot["blocked"]
    assert plan.index(by_asset["adapters/mara"]) < plan.index(shot), "upstream first"


def test_a_regeneration_requested_twice_is_queued_once(live, production, api_settings, tmp_path):
    p = production.code
    sheet = tmp_path / "w.safetensors"
    sheet.write_bytes(b"weights of ovid")
    with session_scope(engine_for(api_settings)) as s:
        adapter = backlot.publish_version(s, p, "adapters/ovid", [sheet], kind="adapter", status="approved",
                                           inputs=[("training_data", f"{p}/characters/mara@1")],
                                           recipe={"kind": "lora_training", "seed": 3, "steps": 2},
                                           store=Store(api_settings.backlot.store_url))
    with live.client(production.tokens["supervisor"]) as c:
        first = c.post(f"/api/projects/{p}/regeneration")
        assert first.status_code == 202, first.text
        body = first.json()
        retrain = [i for i in body["plan"] if i["asset"] == "adapters/ovid"]
        assert [i["action"] for i in retrain] == ["retrain"] and len(body["jobs"]) == 1
        assert retrain[0]["swaps"][0]["new"] == f"{p}/characters/mara@2"
        second = c.post(f"/api/projects/{p}/regeneration").json()
        assert second["jobs"] == [] and second["in_flight"] == {retrain[0]["key"]: body["jobs"][0]}
    with live.client(production.tokens["artist"]) as c:
        assert c.post(f"/api/projects/{p}/regeneration").status_code == 403
    assert adapter.number == 1


def test_adapter_approval_is_a_project_setting(live, production):
    p = production.code
    with live.client(production.tokens["admin"]) as c:
        assert c.get(f"/api/projects/{p}").json()["adapter_approval"] == "review"
        changed = c.patch(f"/api/projects/{p}", json={"adapter_approval": "auto"})
        assert changed.status_code == 200 and changed.json()["adapter_approval"] == "auto"
        assert c.patch(f"/api/projects/{p}", json={"adapter_approval": "sometimes"}).status_code == 422
        empty = c.patch(f"/api/projects/{p}", json={})
        assert empty.status_code == 400 and "nothing to change" in empty.text
