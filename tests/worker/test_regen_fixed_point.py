"""The fixed point of regeneration, as a property over random productions.

Random productions (concept art -> adapters, some shared -> shots in one or two sequences with
continuity) on the tiny model, random upstream changes (new approved art, a new base model, a
recut, identical re-publishes, paint-overs), then one regeneration, run by the worker's own task
code in this process (the same `run_job` a worker runs; only the broker hop is left out). After
it: nothing left to plan, every stale version has its remake awaiting review, and once the
remakes are approved nothing is stale; every job ran once and made one version; every new
version was made from approved upstream versions.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update

import backlot
from backlot import generation as gen
from backlot import jobs
from backlot.db.jobs import Job
from backlot.db.models import Shot, Version
from tests.generation.conftest import make_art

pytestmark = pytest.mark.slow

production = st.fixed_dictionaries({
    "review": st.booleans(),  # retrained adapters wait for a person's approval (else approved at once)
    "characters": st.integers(1, 3),
    # each adapter trains on a non-empty subset of the characters (indices taken modulo their count)
    "adapters": st.lists(st.sets(st.integers(0, 2), min_size=1, max_size=2), min_size=1, max_size=2),
    # each sequence's shots: the adapter each uses (an index, or None for none)
    "sequences": st.lists(st.lists(st.one_of(st.none(), st.integers(0, 1)), min_size=1, max_size=3),
                          min_size=1, max_size=2),
    "changes": st.lists(st.one_of(
        st.tuples(st.just("new_art"), st.integers(0, 2)),
        st.tuples(st.just("same_art"), st.integers(0, 2)),
        st.tuples(st.just("paint_over"), st.integers(0, 2)),
        st.tuples(st.just("new_base"), st.just(0)),
        st.tuples(st.just("recut"), st.integers(0, 5)),
    ), min_size=1, max_size=3),
})

_counter = itertools.count()


@pytest.fixture(scope="module")
def second_base(tmp_path_factory):
    return gen.build_tiny_pipeline(tmp_path_factory.mktemp("tiny2") / "tiny", seed=1)


@pytest.fixture
def in_process_worker(monkeypatch):
    """Run due jobs with the worker's task code until none is due (no broker: nothing is sent)."""
    from backlot.services.worker import tasks

    monkeypatch.setattr(tasks, "take_due", lambda session: [])
    monkeypatch.setattr(tasks, "send_due", lambda due: None)

    def drain() -> int:
        ran = 0
        while True:
            with backlot.session() as s:
                due = [j.id for j in jobs.jobs_to_send(s, stale_after=3600, redispatch_after=3600)]
            if not due:
                return ran
            for job_id in due:
                tasks.run_job(job_id)
                ran += 1
    return drain


def _build(code, spec, tiny_folder, tmp_path):
    with backlot.session() as s:
        backlot.create_project(s, code)
        base = gen.register_model(s, code, "models/tiny", tiny_folder)
        backlot.set_status(s, base.ref, "approved")
        arts = []
        for n in range(spec["characters"]):
            art = backlot.publish_version(s, code, f"characters/c{n}", [make_art(tmp_path / f"{code}c{n}.png", n)],
                                           kind="concept_art", status="approved")
            arts.append(art.ref)
        adapters = []
        for n, picks in enumerate(spec["adapters"]):
            chosen = sorted({arts[i % len(arts)] for i in picks})
            adapter = gen.train_adapter(s, code, f"adapters/a{n}", chosen, base_model=base.ref,
                                        settings=gen.TrainSettings(steps=1, seed=n))
            adapters.append(backlot.set_status(s, adapter.ref, "approved").ref)
        shots = []
        for q, uses in enumerate(spec["sequences"]):
            for n, use in enumerate(uses):
                shot = f"sq{q}sh{n}"
                backlot.create_shot(s, code, shot, sequence=f"sq{q}", frames=1)
                chosen = [] if use is None else [gen.AdapterUse(adapters[use % len(adapters)], 1.0)]
                version = gen.render_shot(s, code, shot, gen.RenderSettings(prompt=shot, steps=2, seed=q * 10 + n),
                                          base_model=base.ref, adapters=chosen)
                backlot.set_status(s, version.ref, "approved")
                shots.append(shot)
    return arts, shots


def _change(code, change, arts, shots, second_base, tmp_path):
    what, n = change
    with backlot.session() as s:
        if what == "new_base":
            base = gen.register_model(s, code, "models/tiny", second_base)
            backlot.set_status(s, base.ref, "approved")
            return
        if what == "recut":
            s.execute(update(Shot).where(Shot.code == shots[n % len(shots)],
                                         Shot.project_id == backlot.get_project(s, code).id)
                      .values(cut_out=Shot.cut_out + 1))
            return
        art = backlot.get_version(s, arts[n % len(arts)])
        asset = art.asset
        if what == "same_art":
            source = tmp_path / f"{code}-{art.asset.replace('/', '_')}-same.png"
            source.write_bytes((gen.version_folder(art) / art.files[0].path).read_bytes())
            version = backlot.publish_version(s, code, asset, [source], names=[art.files[0].path],
                                               new_version=True)
        else:
            inputs = [("init_image", art.ref)] if what == "paint_over" else []
            seed = 100 + next(_counter)
            version = backlot.publish_version(s, code, asset, [make_art(tmp_path / f"{code}-{seed}.png", seed)],
                                               inputs=inputs)
        backlot.set_status(s, version.ref, "approved")


def _check_gates(result, ran: int) -> None:
    """Nothing downstream of an unapproved adapter ran: those jobs wait, and made nothing."""
    gated = {r.id for r in result.jobs if r.kind == "retrain_adapter"}
    with backlot.session() as s:
        records = {r.id: jobs.get_job(s, r.id) for r in result.jobs}
    assert all(records[i].state == "done" for i in gated)
    downstream = set()
    for record in result.jobs:  # jobs come in plan order: upstream first
        params = record.params
        needs = {x["job"] for x in params.get("inputs", []) if "job" in x}
        needs |= {params["continuity"]["job"]} if "job" in (params.get("continuity") or {}) else set()
        if needs & (gated | downstream):
            downstream.add(record.id)
    assert ran == len(result.jobs) - len(downstream)
    for job_id in downstream:
        assert records[job_id].state in ("queued", "waiting_approval") and records[job_id].result_version_id is None


@settings(max_examples=20, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(spec=production)
def test_regeneration_reaches_the_fixed_point(db_url, tiny_folder, second_base, in_process_worker, tmp_path, spec):
    code = f"fp{next(_counter)}"
    arts, shots = _build(code, spec, tiny_folder, tmp_path)
    for change in spec["changes"]:
        _change(code, change, arts, shots, second_base, tmp_path)
    with backlot.session() as s:
        backlot.set_adapter_approval(s, code, "review" if spec["review"] else "auto")
    with backlot.session() as s:
        first_job = s.scalar(select(func.coalesce(func.max(Job.id), 0)))
    from backlot.services.worker.submit import submit_regeneration

    with backlot.session() as s:
        result = submit_regeneration(s, code, backlot.plan_regeneration(s, code), "fixed-point")
    ran_first = in_process_worker()
    if spec["review"]:
        _check_gates(result, ran_first)
        with backlot.session() as s:  # the supervisor approves the retrained adapters
            for record in result.jobs:
                if record.kind == "retrain_adapter":
                    backlot.set_status(s, jobs.get_job(s, record.id).result_version_id, "approved")
        ran_first += in_process_worker()
    assert ran_first == len(result.jobs)

    with backlot.session() as s:
        ran = list(s.scalars(select(Job).where(Job.id > first_job)))
        assert all(j.state.value == "done" and j.attempts == 1 for j in ran), [(j.id, j.state, j.error) for j in ran]
        made = s.scalar(select(func.count()).select_from(Version)
                        .where(Version.idempotency_key.in_([f"job:{j.id}" for j in ran])))
        assert made == len(ran), "each job made one version"
        assert backlot.plan_regeneration(s, code) == [], "a second plan is empty"
        stale = backlot.find_stale_versions(s, code)
        assert all(v.awaiting_review for v in stale), [(v.ref, v.reason) for v in stale if not v.awaiting_review]
        for job in ran:
            new = backlot.get_version(s, job.result_version_id)
            for edge in new.inputs:
                if edge.role in ("base_model", "adapter", "training_data"):
                    upstream = backlot.get_version(s, edge.version_id)
                    assert upstream.status == "approved", f"{new.ref} uses {upstream.ref} ({upstream.status})"
        # A reviewer approves the remakes, in editorial order: then nothing is stale.
        for job in sorted(ran, key=lambda j: j.id):
            if job.kind.value == "rerender":
                backlot.set_status(s, job.result_version_id, "approved")
    with backlot.session() as s:
        assert backlot.find_stale_versions(s, code) == []
