"""Recovery after a crash or a lost message: a chain of renders does not crawl.

The jobs table orders a chain (each render waits for the one before it); a job is sent when
what it waits for is done, by the transaction that finishes it. So after a worker is killed,
only the job it was running waits for the stale-heartbeat rule; the rest follow at once. And a
lost message costs one re-send period, not one per job.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

import backlot
from backlot import jobs
from backlot.db.models import Version
from backlot.storage import Store
from tests.worker.conftest import wait_for_jobs, wait_until

pytestmark = pytest.mark.slow


def _chain(count: int, frames: int = 3, steps: int = 3) -> list[int]:
    from backlot.services.worker.submit import submit_render

    with backlot.session() as s:
        shots = [f"sh{n:03d}0" for n in range(1, count + 1)]
        for shot in shots:
            backlot.create_shot(s, "film", shot, sequence="sq020", frames=frames)
        ids, previous = [], None
        for shot in shots:
            job = submit_render(s, "film", shot, {"prompt": f"mara in {shot}", "steps": steps, "seed": 1},
                                base_model="film/models/tiny@1", key=f"chain:{shot}", depends_on=previous)
            ids.append(job.id)
            previous = job.id
    return ids


def _dispatch_now() -> None:
    from backlot.services.worker.app import create_app
    from backlot.services.worker.dispatch import dispatch

    dispatch(create_app())


def _own_time(records) -> float:
    return sum((r.finished_at - r.started_at).total_seconds() for r in records)


def _check_made_once_in_order(records) -> None:
    with backlot.session() as s:
        versions = [backlot.get_version(s, r.result_version_id) for r in records]
        assert s.scalar(select(func.count()).select_from(Version)
                        .where(Version.idempotency_key.in_([f"job:{r.id}" for r in records]))) == len(records)
    for before, after in zip(versions, versions[1:]):
        assert ("continuity", before.ref) in {(i.role, i.ref) for i in after.inputs}, "in editorial order"
        assert before.id < after.id


def test_after_a_crash_the_rest_of_the_chain_follows_at_once(studio, start_worker, monkeypatch):
    monkeypatch.setenv("BACKLOT_JOB_REDISPATCH_S", "300")  # the default: must not be what recovery waits for
    monkeypatch.setenv("BACKLOT_JOB_STALE_S", "10")
    ids = _chain(6, frames=12, steps=6)  # a render long enough to be caught in the middle
    first = start_worker()
    _dispatch_now()
    wait_until(lambda: _state(ids[1]) == "running", timeout=120)
    first.kill()
    restarted = time.monotonic()
    start_worker()
    done = wait_for_jobs(ids, timeout=240)
    recovered = time.monotonic() - restarted
    assert [r.state for r in done] == ["done"] * 6
    assert done[1].attempts == 2
    own = _own_time(done[1:])
    assert recovered <= own + 30, f"recovery took {recovered:.1f}s for {own:.1f}s of rendering"
    _check_made_once_in_order(done)
    leftovers = [p for p in Path(Store(backlot.config.load_settings().store_url).root).rglob("*") if ".tmp-" in p.name]
    assert leftovers == []
    with backlot.session() as s:  # every message was taken, and a taken message is deleted
        assert s.execute(text("SELECT count(*) FROM kombu_message")).scalar() == 0


def test_a_lost_message_costs_one_re_send_period_not_one_per_job(studio, start_worker, db_url, monkeypatch):
    period = 12
    monkeypatch.setenv("BACKLOT_JOB_REDISPATCH_S", str(period))
    ids = _chain(4)
    _dispatch_now()  # the first job's message goes to the broker...
    with backlot.session() as s:  # ...and is lost (a purged queue, a broker that lost its data)
        assert s.execute(text("DELETE FROM kombu_message")).rowcount >= 1
    started = time.monotonic()
    start_worker()
    done = wait_for_jobs(ids, timeout=180)
    took = time.monotonic() - started
    assert [r.state for r in done] == ["done"] * 4
    assert took <= period + _own_time(done) + 20, f"{took:.1f}s: more than one re-send period"
    _check_made_once_in_order(done)


def _state(job_id: int) -> str:
    with backlot.session() as s:
        return jobs.get_job(s, job_id).state
