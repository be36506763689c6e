"""Regeneration over the whole lineage graph, through real worker processes: stale adapters are
retrained before the shots that use them, review gates hold those shots, a request made twice
queues its work once, and a killed worker does not make anything twice."""

from __future__ import annotations

import json
import time

from sqlalchemy import func, select

import backlot
from backlot import generation as gen
from backlot import jobs
from backlot.db.jobs import Job
from backlot.db.models import Version
from tests.generation.conftest import make_art
from tests.worker.conftest import wait_for_jobs, wait_until

SHOTS = ("sh010", "sh020", "sh030")


def _first_pass(studio, tmp_path, approval="auto"):
    """Adapter trained on mara@1, three shots rendered with it and approved; then a new look for
    mara approved. Returns the first adapter version."""
    with backlot.session() as s:
        backlot.set_adapter_approval(s, "film", approval)
        adapter = gen.train_adapter(s, "film", "adapters/mara", [studio["art"]], base_model=studio["base"],
                                    settings=gen.TrainSettings(steps=3))
        backlot.set_status(s, adapter.ref, "approved")
        for shot in SHOTS:
            version = gen.render_shot(s, "film", shot, gen.RenderSettings(prompt=f"mara in {shot}", steps=2, seed=5),
                                      base_model=studio["base"], adapters=[gen.AdapterUse(adapter.ref, 1.0)])
            backlot.set_status(s, version.ref, "approved")
        art2 = backlot.publish_version(s, "film", "characters/mara", [make_art(tmp_path / "m2.png", 2)],
                                        status="approved")
    return adapter, art2


def _regenerate():
    from backlot.services.worker.app import create_app
    from backlot.services.worker.submit import regenerate

    return regenerate(create_app(), "film")


def test_one_run_retrains_the_stale_adapter_then_remakes_its_shots(studio, start_worker, tmp_path):
    adapter1, art2 = _first_pass(studio, tmp_path)
    with backlot.session() as s:
        plan = backlot.plan_regeneration(s, "film")
    assert [(i.action, i.asset) for i in plan] == [("retrain", "adapters/mara")] + [
        ("render", f"shots/{shot}/main") for shot in SHOTS]
    retrain = plan[0]
    assert [(w.role, w.new) for w in retrain.swaps] == [("training_data", art2.ref)]
    assert all(w.from_item == retrain.key for i in plan[1:] for w in i.swaps if w.role == "adapter")
    assert plan[1].waits_for == [retrain.key] and plan[2].continuity == "new version of sh010"
    assert set(plan[2].waits_for) == {retrain.key, plan[1].key}

    start_worker()
    result = _regenerate()
    assert [j.kind for j in result.jobs] == ["retrain_adapter"] + ["rerender"] * 3
    done = wait_for_jobs([j.id for j in result.jobs], timeout=300)
    assert [r.state for r in done] == ["done"] * 4
    with backlot.session() as s:
        adapter2 = backlot.get_version(s, done[0].result_version_id)
        assert adapter2.ref == "film/adapters/mara@2" and adapter2.status == "approved"
        assert {(i.role, i.ref) for i in adapter2.inputs} >= {("training_data", art2.ref),
                                                              ("regenerated_from", adapter1.ref)}
        assert adapter2.recipe["seed"] == adapter1.recipe["seed"]
        shots = [backlot.get_version(s, r.result_version_id) for r in done[1:]]
        for shot in shots:
            assert ("adapter", adapter2.ref) in {(i.role, i.ref) for i in shot.inputs}
        for before, after in zip(shots, shots[1:]):
            assert ("continuity", before.ref) in {(i.role, i.ref) for i in after.inputs}
        # Nothing left to plan; the old approved shots wait for review of their remakes.
        assert backlot.plan_regeneration(s, "film") == []
        stale = backlot.find_stale_versions(s, "film")
        assert {(v.ref, v.awaiting_review) for v in stale} == {
            (f"film/shots/{shot}/main@1", f"film/shots/{shot}/main@2") for shot in SHOTS}
        for shot in shots:
            backlot.set_status(s, shot.ref, "approved")
    with backlot.session() as s:
        assert backlot.find_stale_versions(s, "film") == []
    again = _regenerate()
    assert again.jobs == [] and again.in_flight == {}


def test_a_review_gate_holds_the_shots_until_the_adapter_is_approved(studio, start_worker, tmp_path, run):
    _first_pass(studio, tmp_path, approval="review")
    start_worker()
    result = _regenerate()
    retrain, *renders = result.jobs
    (trained,) = wait_for_jobs([retrain.id], timeout=120)
    assert trained.state == "done"
    with backlot.session() as s:
        adapter2 = backlot.get_version(s, trained.result_version_id)
        assert adapter2.status == "review"
    time.sleep(2)  # the worker and its dispatcher had every chance to run them
    with backlot.session() as s:
        held = {r.id: r for r in jobs.list_jobs(s, "film") if r.id in {j.id for j in renders}}
    assert held[renders[0].id].state == "waiting_approval"
    assert held[renders[0].id].waiting_for == f"approval of {adapter2.ref} (job {retrain.id})"
    assert all(r.state in ("queued", "waiting_approval") for r in held.values())
    # A second request while the first waits starts nothing new.
    again = _regenerate()
    assert again.jobs == [] and set(again.in_flight.values()) == {j.id for j in renders}
    listed = {j["id"]: j for j in json.loads(run("jobs", "--project", "film", "--json").stdout)}
    assert listed[renders[0].id]["waiting_for"] == f"approval of {adapter2.ref} (job {retrain.id})"
    assert listed[renders[1].id]["waiting_for"].startswith(f"job {renders[0].id} (")
    stale = json.loads(run("stale", "film", "--json").stdout)
    assert {s["awaiting_review"] for s in stale if s["asset"] == "adapters/mara"} == {adapter2.ref}
    regen = run("regen", "run", "film", "--no-wait")
    assert "already in flight" in " ".join(regen.stdout.split())

    approved_at = time.monotonic()
    with backlot.session() as s:
        backlot.set_status(s, adapter2.ref, "approved", note="on model")
    first = wait_until(lambda: _state(renders[0].id) in ("running", "done") and time.monotonic(), timeout=30)
    assert first - approved_at < 5, "an approval releases the waiting jobs at once, not at the next poll"
    done = wait_for_jobs([j.id for j in renders], timeout=240)
    assert [r.state for r in done] == ["done"] * 3


def test_a_rejected_adapter_cancels_the_shots_that_wait_for_it(studio, start_worker, tmp_path):
    _first_pass(studio, tmp_path, approval="review")
    start_worker()
    retrain, *renders = _regenerate().jobs
    (trained,) = wait_for_jobs([retrain.id], timeout=120)
    with backlot.session() as s:
        backlot.set_status(s, trained.result_version_id, "rejected", note="off model")
    cancelled = wait_for_jobs([j.id for j in renders], timeout=30)
    assert [r.state for r in cancelled] == ["cancelled"] * 3
    assert "rejected" in cancelled[0].error
    assert all("cancelled" in r.error or "rejected" in r.error for r in cancelled)
    with backlot.session() as s:
        assert s.scalar(select(func.count()).select_from(Version).where(Version.status == "wip")) == 0


def test_a_worker_killed_mid_plan_finishes_each_item_once(studio, start_worker, tmp_path):
    _first_pass(studio, tmp_path)
    worker = start_worker()
    result = _regenerate()
    ids = [j.id for j in result.jobs]
    wait_until(lambda: _state(ids[1]) == "running", timeout=120)
    worker.kill()
    start_worker()
    done = wait_for_jobs(ids, timeout=300)
    assert [r.state for r in done] == ["done"] * 4
    with backlot.session() as s:
        assert s.scalar(select(func.count()).select_from(Version).where(Version.id > min(ids) * 0)
                        .where(Version.idempotency_key.like("job:%"))) == 4, "each item published once"
        assert s.scalar(select(func.count()).select_from(Job)) == 4
        assert backlot.plan_regeneration(s, "film") == []


def _state(job_id: int) -> str:
    with backlot.session() as s:
        return jobs.get_job(s, job_id).state
