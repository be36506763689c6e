"""Lineage walks follow production roles by default; the regenerated_from chain is the history."""

from __future__ import annotations

import json

import pytest

import backlot
from backlot.errors import InvalidInputError


def publish(session, files, asset, kind, inputs=()):
    return backlot.publish_version(session, "film", asset, [files("f", f"{asset} {len(inputs)} {inputs}")],
                                   kind=kind, inputs=list(inputs), new_version=True)


def build(session, files) -> dict[str, str]:
    """art@1 -> adapter@1 -> shot@1; shot@2 and shot@3 remade from the one before, with adapter@2
    (trained on art@2); shot@1 alone also used art@1 directly and the neighbour's plate."""
    backlot.create_project(session, "film")
    art1 = publish(session, files, "characters/mara", "concept_art").ref
    art2 = publish(session, files, "characters/mara", "concept_art").ref
    plate = publish(session, files, "plates/sh010", "reference").ref
    ad1 = publish(session, files, "adapters/mara", "adapter", [("training_data", art1)]).ref
    ad2 = publish(session, files, "adapters/mara", "adapter", [("training_data", art2)]).ref
    sh1 = publish(session, files, "shots/sh010/main", "shot_render",
                  [("adapter", ad1), ("concept_art", art1), ("init_image", plate)]).ref
    sh2 = publish(session, files, "shots/sh010/main", "shot_render", [("adapter", ad2), ("regenerated_from", sh1)]).ref
    sh3 = publish(session, files, "shots/sh010/main", "shot_render", [("adapter", ad2), ("regenerated_from", sh2)]).ref
    return dict(art1=art1, art2=art2, plate=plate, ad1=ad1, ad2=ad2, sh1=sh1, sh2=sh2, sh3=sh3)


def pairs(edges):
    return {(e.version, e.role, e.input) for e in edges}


def test_inputs_follow_production_roles_and_never_pass_through_history(session, files):
    r = build(session, files)
    assert pairs(backlot.get_inputs(session, r["sh3"], transitive=True)) == {
        (r["sh3"], "adapter", r["ad2"]), (r["ad2"], "training_data", r["art2"])}, "nothing of sh1 through sh2"
    everything = pairs(backlot.get_inputs(session, r["sh3"], transitive=True,
                                          roles=backlot.lineage.graph.ALL_ROLES))
    assert (r["sh2"], "regenerated_from", r["sh1"]) in everything and (r["sh1"], "init_image", r["plate"]) in everything
    assert pairs(backlot.get_inputs(session, r["sh1"], transitive=True, roles=["adapter"])) == {
        (r["sh1"], "adapter", r["ad1"])}, "training_data is not followed past the adapter"
    assert pairs(backlot.get_inputs(session, r["sh1"], transitive=True, roles=("adapter", "training_data"))) == {
        (r["sh1"], "adapter", r["ad1"]), (r["ad1"], "training_data", r["art1"])}
    assert pairs(backlot.get_inputs(session, r["sh3"], roles="regenerated_from")) == {
        (r["sh3"], "regenerated_from", r["sh2"])}


def test_outputs_follow_production_roles(session, files):
    r = build(session, files)
    assert backlot.get_outputs(session, r["sh1"], transitive=True) == []
    assert pairs(backlot.get_outputs(session, r["sh1"], transitive=True, roles=["regenerated_from"])) == {
        (r["sh2"], "regenerated_from", r["sh1"]), (r["sh3"], "regenerated_from", r["sh2"])}
    down = pairs(backlot.get_outputs(session, r["art2"], transitive=True))
    assert down == {(r["ad2"], "training_data", r["art2"]), (r["sh2"], "adapter", r["ad2"]),
                    (r["sh3"], "adapter", r["ad2"])}


def test_history_is_the_regenerated_from_chain_nearest_first(session, files):
    r = build(session, files)
    up = backlot.get_history(session, r["sh3"])
    assert [(e.version, e.input, e.depth) for e in up] == [(r["sh3"], r["sh2"], 1), (r["sh2"], r["sh1"], 2)]
    assert {e.role for e in up} == {"regenerated_from"}
    down = backlot.get_history(session, r["sh1"], downstream=True)
    assert [(e.input, e.version, e.depth) for e in down] == [(r["sh1"], r["sh2"], 1), (r["sh2"], r["sh3"], 2)]
    assert backlot.get_history(session, r["art1"]) == []
    assert "get_history" in backlot.__all__ and "get_history" in backlot.lineage.__all__


@pytest.mark.parametrize("roles, message", [
    (["adapter", "sidekick"], "input role 'sidekick' is invalid: use one of training_data, base_model"),
    ([], "give at least one input role"),
])
def test_unknown_roles_are_refused(session, files, roles, message):
    r = build(session, files)
    for walk in (backlot.get_inputs, backlot.get_outputs):
        with pytest.raises(InvalidInputError, match=message):
            walk(session, r["sh1"], roles=roles)


# -- the CLI -------------------------------------------------------------------------------


@pytest.fixture
def cli_film(run, files, db_url):
    with backlot.session() as s:
        return build(s, files)


def test_cli_lineage_shows_production_inputs_and_history_apart(run, cli_film):
    r = cli_film
    up = run("lineage", r["sh3"], "--up").stdout
    assert "history: film/shots/sh010/main@3 regenerated from @2, from @1" in up
    assert "regenerated_from" not in up and "film/adapters/mara@2" in up and "training_data" in up
    down = run("lineage", "film/shots/sh010/main@1", "--down").stdout
    assert "history: film/shots/sh010/main@1 regenerated as @2, as @3" in down
    assert "history" not in run("lineage", r["art1"], "--up").stdout

    edges = json.loads(run("lineage", r["sh3"], "--json").stdout)
    assert {(e["role"], e["input"]) for e in edges} == {("adapter", r["ad2"]), ("training_data", r["art2"])}
    chain = json.loads(run("lineage", r["sh3"], "--roles", "regenerated_from", "--json").stdout)
    assert [(e["version"], e["input"]) for e in chain] == [(r["sh3"], r["sh2"]), (r["sh2"], r["sh1"])]
    only = json.loads(run("lineage", r["sh1"], "--roles", "training_data, adapter", "--json").stdout)
    assert {(e["role"], e["input"]) for e in only} == {("adapter", r["ad1"]), ("training_data", r["art1"])}
    direct = json.loads(run("lineage", r["sh1"], "--direct", "--json").stdout)
    assert {e["role"] for e in direct} == {"adapter", "concept_art", "init_image"}


@pytest.mark.parametrize("roles, message", [
    ("adapter,sidekick", "input role 'sidekick' is invalid: use one of training_data, base_model, adapter, "
                         "concept_art, init_image, continuity, regenerated_from"),
    ("", "input role '' is invalid"),
])
def test_cli_unknown_role_is_one_line_and_exit_2(run, cli_film, roles, message):
    result = run("lineage", cli_film["sh1"], "--roles", roles, code=2)
    assert message in result.stderr and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
