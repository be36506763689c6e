"""Training-data clearance: refusal listing what blocks, a recorded override, the report."""

from __future__ import annotations

import json

import pytest

import backlot
from backlot import generation as gen
from backlot import provenance
from backlot.errors import InvalidInputError
from backlot.generation.loading import _CACHE, clear_cache
from tests.provenance.conftest import make_art

TRAIN = gen.TrainSettings(steps=4, lr=1e-3, seed=0)


def test_training_on_art_not_cleared_is_refused_with_what_blocks_it_and_an_override_is_recorded(production, run):
    tmp = production["tmp"]
    with backlot.session() as s:
        ovid = backlot.publish_version(s, "film", "characters/ovid", [make_art(tmp / "ovid.png", 2)],
                                       kind="concept_art", status="approved").ref
    run("rights", "set", production["art"], "--owner", "Jo Artist", "--licence", "freelance", "--consent", "no")
    clear_cache()
    with backlot.session() as s:
        with pytest.raises(provenance.ClearanceError) as refused:
            gen.train_adapter(s, "film", "adapters/cast", [production["art"], ovid], base_model=production["base"],
                              settings=TRAIN)
    assert [b["ref"] for b in refused.value.blocked] == [production["art"]]  # 'no' blocks; unrecorded does not
    assert "Jo Artist" in str(refused.value) and _CACHE == {}  # refused before the model was loaded
    # a project that requires clearance refuses anything not cleared: both pieces are listed
    run("provenance", "policy", "film", "--require-clearance")
    with backlot.session() as s:
        with pytest.raises(InvalidInputError) as both:
            gen.train_adapter(s, "film", "adapters/cast", [production["art"], ovid], base_model=production["base"],
                              settings=TRAIN)
    assert production["art"] in str(both.value) and f"{ovid} (consent to train: not recorded" in str(both.value)
    with backlot.session() as s:
        assert not any(a.kind == "adapter" for a in backlot.list_assets(s, "film"))  # nothing half-written
        adapter = gen.train_adapter(s, "film", "adapters/cast", [production["art"], ovid],
                                    base_model=production["base"], settings=TRAIN,
                                    clearance_override="legal cleared on 2026-12-01, ticket LEG-42", actor="sup")
    override = adapter.metadata["clearance_override"]
    assert override["reason"].startswith("legal cleared") and override["by"] == "sup"
    assert {b["ref"] for b in override["blocked"]} == {production["art"], ovid}
    # once consent is recorded, training goes through without override
    run("rights", "set", production["art"], "--owner", "Jo Artist", "--licence", "freelance", "--consent", "yes")
    run("rights", "set", ovid, "--owner", "Studio", "--licence", "work for hire", "--consent", "yes")
    with backlot.session() as s:
        clean = gen.train_adapter(s, "film", "adapters/clean", [production["art"], ovid],
                                  base_model=production["base"], settings=TRAIN)
    assert "clearance_override" not in clean.metadata
    history = json.loads(run("rights", "show", production["art"], "--json").stdout)
    assert [r["consent"] for r in history] == ["no", "yes"]


def test_bad_rights_input_is_one_clear_line(production, run):
    assert "--consent 'maybe'" in run("rights", "set", production["art"], "--owner", "x", "--licence", "y",
                                      "--consent", "maybe", code=2).stderr
    with backlot.session() as s:
        adapter = gen.train_adapter(s, "film", "adapters/mara", [production["art"]], base_model=production["base"],
                                    settings=TRAIN)
    assert "rights are recorded on concept art" in run("rights", "set", adapter.ref, "--owner", "x", "--licence", "y",
                                                       "--consent", "yes", code=2).stderr


def test_clearance_report_lists_every_upstream_piece_of_a_shot(production, run, tmp_path):
    run("rights", "set", production["art"], "--owner", "Jo Artist", "--licence", "freelance", "--consent", "yes")
    run("rights", "set", production["base"], "--owner", "Model Lab", "--licence", "OpenRAIL-M", "--consent", "yes")
    with backlot.session() as s:
        adapter = gen.train_adapter(s, "film", "adapters/mara", [production["art"]], base_model=production["base"],
                                    settings=TRAIN)
        settings = gen.RenderSettings(prompt="mara walks", steps=4)
        first = gen.render_shot(s, "film", "sh010", settings, base_model=production["base"],
                                adapters=[gen.AdapterUse(adapter.ref, 1.0)])
        second = gen.render_shot(s, "film", "sh020", settings, base_model=production["base"],
                                 adapters=[gen.AdapterUse(adapter.ref, 1.0)])
    report_path = tmp_path / "clearance.html"
    result = run("clearance", "film/sh020", "--json", "--html", report_path)
    report = json.loads(result.stdout)
    assert report["ref"] == second.ref and report["cleared"] is True
    pieces = {p["ref"]: p for p in report["pieces"]}
    assert set(pieces) == {production["base"], adapter.ref, production["art"], first.ref}
    assert pieces[production["art"]]["rights"]["owner"] == "Jo Artist"
    assert pieces[production["base"]]["rights"]["licence"] == "OpenRAIL-M"
    assert pieces[first.ref]["role"] == "continuity"
    page = report_path.read_text()
    for ref in pieces:
        assert ref in page
    assert "Jo Artist" in page and "Every upstream piece is cleared." in page
    # consent withdrawn: the report says so and exits 1
    run("rights", "set", production["art"], "--owner", "Jo Artist", "--licence", "freelance", "--consent", "no")
    text_out = run("clearance", second.ref, code=1).stdout
    assert "NOT cleared" in text_out and "consent to train: no" in text_out
