"""Jobs through real Celery worker processes: outbox, idempotency, crashes, broker outages, regeneration."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

import backlot
from backlot import generation as gen
from backlot import jobs
from backlot.db.jobs import Job, JobKind
from backlot.db.models import Version
from backlot.errors import BacklotError
from backlot.storage import Store
from tests.generation.conftest import make_art
from tests.worker.conftest import wait_for_jobs, wait_until

pytestmark = pytest.mark.slow


def render_job(s, shot, *, key, frames=None, steps=2, settings=None, **extra):
    from backlot.services.worker.submit import submit_render

    return submit_render(s, "film", shot, settings or {"prompt": f"{shot} mara", "steps": steps},
                         base_model="film/models/tiny@approved", frames=frames, key=key, **extra)


def dispatch_now():
    from backlot.services.worker.app import create_app
    from backlot.services.worker.dispatch import dispatch

    return dispatch(create_app())


def test_a_render_job_runs_on_the_embedded_broker(studio, start_worker):
    with backlot.session() as s:
        job = render_job(s, "sh010", key="render-sh010")
        again = render_job(s, "sh010", key="render-sh010")  # the same request twice: one job
    assert again.id == job.id
    assert dispatch_now() == 1
    start_worker()
    (done,) = wait_for_jobs([job.id])
    assert done.state == "done" and done.progress == 1.0 and done.attempts == 1
    with backlot.session() as s:
        version = backlot.get_version(s, done.result_version_id)
        events = [e.kind.value for e in backlot.list_events(s, backlot.get_project(s, "film").id)]
    assert version.ref == "film/shots/sh010/main@1" and "job_finished" in events


def test_the_same_message_twice_publishes_one_version(studio, redis, start_worker):
    from backlot.services.worker.app import create_app

    with backlot.session() as s:
        job = render_job(s, "sh010", key="twice")
    app = create_app()
    for _ in range(2):
        app.send_task("backlot.run_job", args=[job.id], queue="gpu")
    start_worker()
    wait_for_jobs([job.id])
    with backlot.session() as s:
        assert len(backlot.list_versions(s, "film", "shots/sh010/main")) == 1


def test_a_worker_killed_mid_render_loses_nothing(studio, start_worker):
    with backlot.session() as s:
        job = render_job(s, "sh020", key="long", frames=80, steps=4)
    dispatch_now()
    worker = start_worker()

    def claimed():
        with backlot.session() as s:
            return jobs.get_job(s, job.id).state == "running"
    wait_until(claimed)
    time.sleep(3)  # well into the 80 frames
    worker.kill()  # kill -9, the whole process group
    with backlot.session() as s:
        assert jobs.get_job(s, job.id).state == "running"
        assert backlot.list_assets(s, "film", "shot_render") == []
    start_worker()
    (done,) = wait_for_jobs([job.id], timeout=240)
    assert done.state == "done" and done.attempts == 2
    with backlot.session() as s:
        assert len(backlot.list_versions(s, "film", "shots/sh020/main")) == 1
    store = Store(backlot.config.load_settings().store_url)
    leftovers = [p for p in __import__("pathlib").Path(store.root).rglob("*") if ".tmp-" in p.name]
    assert leftovers == [], "no partial file is visible in the store"


def test_jobs_requested_while_the_broker_is_down_run_when_it_is_back(studio, redis, start_worker):
    redis.stop()
    with backlot.session() as s:
        ids = [render_job(s, shot, key=f"outage-{shot}").id for shot in ("sh010", "sh030")]
    with pytest.raises(Exception):
        dispatch_now()  # the broker refuses: the jobs stay queued in PostgreSQL
    with backlot.session() as s:
        assert {jobs.get_job(s, i).state for i in ids} == {"queued"}
    redis.start()  # same port, empty: nothing was ever sent
    start_worker()  # its dispatcher loop sends what is queued
    assert {r.state for r in wait_for_jobs(ids)} == {"done"}


def test_a_failing_task_records_the_error_and_retries_as_configured(studio, start_worker):
    with backlot.session() as s:
        crashing = render_job(s, "sh010", key="crash", settings={"prompt": "x", "steps": "many"})
        bad_input = render_job(s, "nope", key="bad-input")
    dispatch_now()
    start_worker()
    crashed, refused = wait_for_jobs([crashing.id, bad_input.id])
    assert crashed.state == "failed" and crashed.attempts == crashed.max_attempts == 3
    assert "TypeError" in crashed.error and "Traceback" in crashed.traceback
    assert refused.state == "failed" and refused.attempts == 1, "bad input is not retried"
    assert "no shot 'nope'" in refused.error
    with backlot.session() as s:
        assert backlot.list_assets(s, "film", "shot_render") == []


def test_regeneration_plans_and_remakes_stale_shots_in_order(studio, start_worker, tmp_path):
    from backlot.services.worker.app import create_app
    from backlot.services.worker.submit import regenerate

    with backlot.session() as s:
        adapter1 = gen.train_adapter(s, "film", "adapters/mara", [studio["art"]], base_model=studio["base"],
                                     settings=gen.TrainSettings(steps=5))
        backlot.set_status(s, adapter1.ref, "approved")
        for shot in ("sh010", "sh020", "sh030"):
            gen.render_shot(s, "film", shot, gen.RenderSettings(prompt=f"{shot}", steps=2, seed=7),
                            base_model=studio["base"], adapters=[gen.AdapterUse(adapter1.ref, 1.0)])
        art2 = backlot.publish_version(s, "film", "characters/mara", [make_art(tmp_path / "m2.png", 2)],
                                        status="approved")
        adapter2 = gen.train_adapter(s, "film", "adapters/mara", [art2.ref], base_model=studio["base"],
                                     settings=gen.TrainSettings(steps=5))
        backlot.set_status(s, adapter2.ref, "approved")
        plan = backlot.plan_regeneration(s, "film")
    assert [i.shot for i in plan] == ["sh010", "sh020", "sh030"]
    assert plan[0].swaps[0].new == adapter2.ref and plan[1].continuity == "new version of sh010"
    start_worker()
    result = regenerate(create_app(), "film")
    assert [j.kind for j in result.jobs] == ["rerender"] * 3
    batch = result.batch
    done = wait_for_jobs([j.id for j in result.jobs], timeout=240)
    assert [r.state for r in done] == ["done"] * 3
    with backlot.session() as s:
        new = [backlot.get_version(s, r.result_version_id) for r in done]
        assert backlot.plan_regeneration(s, "film") == []
        assert s.scalar(select(func.count()).select_from(Job).where(Job.batch == batch)) == 3
    for previous, version in zip(new, new[1:]):
        assert ("continuity", previous.ref) in {(i.role, i.ref) for i in version.inputs}
    assert all(("adapter", adapter2.ref) in {(i.role, i.ref) for i in v.inputs} for v in new)
    assert all(any(i.role == "regenerated_from" for i in v.inputs) for v in new)
    assert new[0].recipe["seed"] == 7


def test_a_job_cancelled_mid_render_stays_cancelled_and_publishes_nothing(studio, start_worker):
    with backlot.session() as s:
        job = render_job(s, "sh020", key="cancel-me", frames=80, steps=4)
    dispatch_now()
    start_worker()

    def running():
        with backlot.session() as s:
            return jobs.get_job(s, job.id).state == "running"
    wait_until(running)
    with backlot.session() as s:
        jobs.cancel_job(s, job.id)

    def noticed():  # the worker's next heartbeat (or its finish) sees the cancel and stops
        with backlot.session() as s:
            return jobs.get_job(s, job.id).error
    assert "cancelled" in wait_until(noticed)
    with backlot.session() as s:
        assert jobs.get_job(s, job.id).state == "cancelled"
        assert backlot.list_assets(s, "film", "shot_render") == []


def test_a_finished_task_sends_the_job_waiting_on_it(studio, start_worker, monkeypatch):
    monkeypatch.setenv("BACKLOT_DISPATCH_EVERY_S", "600")  # the periodic dispatcher stays out of it
    with backlot.session() as s:
        first = render_job(s, "sh010", key="first")
        second = render_job(s, "sh020", key="second", depends_on=first.id)
    assert dispatch_now() == 1, "the second waits for the first"
    start_worker()
    assert [r.state for r in wait_for_jobs([first.id, second.id])] == ["done", "done"]


def test_finishing_a_cancelled_job_publishes_nothing(studio):
    from backlot.services.worker.tasks import execute

    with backlot.session() as s:
        job = render_job(s, "sh010", key="cancelled-before-finish")
        jobs.cancel_job(s, job.id)
    with pytest.raises(BacklotError, match="cancelled"):  # at a heartbeat, or at the finish
        execute(JobKind.render_shot, "film", dict(job.params), job.id, None)
    with backlot.session() as s:
        jobs.fail_attempt(s, job.id, "ConflictError: cancelled", "", final=True)
        record = jobs.get_job(s, job.id)
        assert record.state == "cancelled" and "cancelled" in record.error
        assert backlot.list_assets(s, "film", "shot_render") == []
