"""Clearance overrides from the CLI and through the worker's training and retrain jobs."""

from __future__ import annotations

import json

import backlot
from backlot import generation as gen
from backlot import jobs
from backlot import provenance
from tests.provenance.conftest import make_art

TRAIN = dict(steps=2, lr=1e-3, seed=0)
CLI_TRAIN = ("--steps", "2", "--resolution", "32")


def adapters(s) -> list:
    return [a for a in backlot.list_assets(s, "film") if a.kind == "adapter"]


def test_adapter_train_refuses_art_not_cleared_in_one_line_and_records_an_override(production, run):
    tmp = production["tmp"]
    with backlot.session() as s:
        ovid = backlot.publish_version(s, "film", "characters/ovid", [make_art(tmp / "ovid.png", 2)],
                                       kind="concept_art", status="approved").ref
    run("rights", "set", production["art"], "--owner", "Jo Artist", "--licence", "freelance", "--consent", "no")
    run("provenance", "policy", "film", "--require-clearance")
    train = ("adapter", "train", "film", "adapters/cast", "--from", production["art"], "--from", ovid, *CLI_TRAIN)
    refused = run(*train, code=2)
    message = refused.stderr.strip()
    assert "\n" not in message and message.startswith("error: training refused")
    assert f"{production['art']} (consent to train: no, owner: Jo Artist)" in message
    assert f"{ovid} (consent to train: not recorded, owner: unknown)" in message
    assert "--override-clearance REASON" in message and refused.stdout == ""
    with backlot.session() as s:
        assert adapters(s) == []  # nothing written
    assert "training refused" in run(*train, "--override-clearance", " ", code=2).stderr  # a blank reason is none
    done = json.loads(run(*train, "--override-clearance", "legal cleared, ticket LEG-42", "--json").stdout)
    override = done["metadata"]["clearance_override"]
    assert override["reason"] == "legal cleared, ticket LEG-42" and override["by"] == "tester"
    assert [b["ref"] for b in override["blocked"]] == [production["art"], ovid]
    with backlot.session() as s:
        assert [a.name for a in adapters(s)] == ["adapters/cast"]


def test_worker_training_and_retrain_jobs_carry_a_recorded_override(production, run):
    # Imported here: the worker's Celery app resolves its broker (the database) on import.
    from backlot.services.worker.submit import submit_training
    from backlot.services.worker.tasks import run_job

    run("rights", "set", production["art"], "--owner", "Jo Artist", "--licence", "freelance", "--consent", "no")
    with backlot.session() as s:
        plain = submit_training(s, "film", "adapters/plain", [production["art"]], base_model=production["base"],
                                settings=TRAIN, key="plain")
        overridden = submit_training(s, "film", "adapters/cast", [production["art"]], base_model=production["base"],
                                     settings=TRAIN, key="cast", clearance_override="LEG-42", actor="producer")
    assert run_job(plain.id) is None  # refused: bad input, final, nothing published
    adapter_id = run_job(overridden.id)
    with backlot.session() as s:
        failed = jobs.get_job(s, plain.id)
        assert failed.state == "failed" and "Jo Artist" in failed.error and "not cleared to train" in failed.error
        adapter = backlot.get_version(s, adapter_id)
        assert [a.name for a in adapters(s)] == ["adapters/cast"]
    recorded = adapter.metadata["clearance_override"]
    assert recorded["reason"] == "LEG-42" and recorded["by"] == "producer"  # the requester, not the worker
    # a retrain (what a regeneration queues) replays the override for the pieces it covered
    with backlot.session() as s:
        retrained = gen.retrain_adapter(s, adapter.ref)
    carried = retrained.metadata["clearance_override"]
    assert carried["carried_from"] == adapter.ref and carried["reason"] == "LEG-42" and carried["by"] == "producer"
    # ... but not for art it did not cover: a new version of the art, consent 'no', is refused
    with backlot.session() as s:
        newer = backlot.publish_version(s, "film", "characters/mara", [make_art(production["tmp"] / "m2.png", 3)],
                                        kind="concept_art", status="approved").ref
        provenance.set_rights(s, newer, owner="Jo Artist", licence="freelance", consent="no")
    with backlot.session() as s:
        try:
            gen.retrain_adapter(s, adapter.ref)
        except provenance.ClearanceError as exc:
            assert [b["ref"] for b in exc.blocked] == [newer]
            assert f"override recorded on {adapter.ref} covers only {production['art']}" in str(exc)
        else:
            raise AssertionError("a retrain on art the override did not cover was not refused")
    with backlot.session() as s:
        assert len(backlot.list_versions(s, "film", "adapters/cast")) == 2  # nothing more published
