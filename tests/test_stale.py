"""Stale versions: worked scenarios, and a property test against a plain-Python model."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

import backlot


_content = itertools.count()


def publish(session, files, project, asset, kind="reference", inputs=(), status="wip", content=None):
    """A version of new bytes (each call its own), or of `content` when given."""
    body = content if content is not None else f"{asset} #{next(_content)}"
    return backlot.publish_version(session, project, asset, [files("f", body)], kind=kind,
                                    inputs=list(inputs), status=status)


def stale_map(session, project):
    return {s.ref: s.reason for s in backlot.find_stale_versions(session, project)}


def test_superseded_concept_art_makes_adapter_and_shots_stale(session, files):
    backlot.create_project(session, "film")
    art1 = publish(session, files, "film", "art/mara", "concept_art", status="approved")
    base = publish(session, files, "film", "base", "base_model", status="approved")
    ad1 = publish(session, files, "film", "adapters/mara", "adapter",
                  [("training_data", art1.ref), ("base_model", base.ref)], status="approved")
    sh1 = publish(session, files, "film", "shots/a", "shot_render", [("adapter", ad1.ref), ("base_model", base.ref)])
    sh2 = publish(session, files, "film", "shots/b", "shot_render", [("adapter", ad1.ref), ("continuity", sh1.ref)])
    other = publish(session, files, "film", "shots/c", "shot_render", [("base_model", base.ref)])
    assert stale_map(session, "film") == {}

    art2 = publish(session, files, "film", "art/mara", "concept_art")
    assert stale_map(session, "film") == {}, "a newer wip does not supersede under the approved policy"
    backlot.set_status(session, art2.ref, "approved")
    stale = stale_map(session, "film")
    assert set(stale) == {ad1.ref, sh1.ref, sh2.ref}
    assert other.ref not in stale and art1.ref not in stale
    assert stale[ad1.ref].path == [ad1.ref, art1.ref]
    assert stale[ad1.ref].role == "training_data"
    assert stale[ad1.ref].superseded_by == art2.ref
    assert stale[sh1.ref].path == [sh1.ref, ad1.ref, art1.ref]
    assert stale[sh2.ref].path == [sh2.ref, ad1.ref, art1.ref], "the shortest path wins"

    # Rejecting the new art un-supersedes the old one: nothing is stale any more.
    backlot.set_status(session, art2.ref, "rejected", note="off model")
    assert stale_map(session, "film") == {}


def test_regenerated_from_does_not_make_the_new_version_stale(session, files):
    backlot.create_project(session, "film")
    v1 = publish(session, files, "film", "shots/a", "shot_render", status="approved")
    v2 = publish(session, files, "film", "shots/a", "shot_render", [("regenerated_from", v1.ref)])
    backlot.set_status(session, v2.ref, "approved")
    assert stale_map(session, "film") == {}


def test_latest_policy_and_switching_policy(session, files):
    backlot.create_project(session, "film", stale_policy="latest")
    art1 = publish(session, files, "film", "art", "concept_art", status="approved")
    shot = publish(session, files, "film", "shot", "shot_render", [("concept_art", art1.ref)], status="approved")
    art2 = publish(session, files, "film", "art", "concept_art")  # wip, but newer
    assert set(stale_map(session, "film")) == {shot.ref}
    assert stale_map(session, "film")[shot.ref].superseded_by == art2.ref
    backlot.set_stale_policy(session, "film", "approved")
    assert stale_map(session, "film") == {}
    backlot.set_stale_policy(session, "film", "latest")
    assert set(stale_map(session, "film")) == {shot.ref}


def test_only_current_versions_are_reported(session, files):
    backlot.create_project(session, "film")
    art1 = publish(session, files, "film", "art", "concept_art", status="approved")
    old = publish(session, files, "film", "shot", "shot_render", [("concept_art", art1.ref)], status="approved")
    middle = publish(session, files, "film", "shot", "shot_render", [("concept_art", art1.ref)])
    latest = publish(session, files, "film", "shot", "shot_render", [("concept_art", art1.ref)])
    backlot.set_status(session, publish(session, files, "film", "art", "concept_art").ref, "approved")
    assert set(stale_map(session, "film")) == {old.ref, latest.ref}
    assert middle.ref not in stale_map(session, "film")


def test_stale_is_per_project(session, files):
    for code in ("a", "b"):
        backlot.create_project(session, code)
        art = publish(session, files, code, "art", "concept_art", status="approved")
        publish(session, files, code, "shot", "shot_render", [("concept_art", art.ref)])
    backlot.set_status(session, publish(session, files, "a", "art", "concept_art").ref, "approved")
    assert set(stale_map(session, "a")) == {"a/shot@1"}
    assert stale_map(session, "b") == {}


def test_a_supersession_by_identical_content_is_no_change(session, files):
    """`backlot model tiny` run twice registers the same bytes again, approved: nothing is stale."""
    backlot.create_project(session, "film")
    base1 = publish(session, files, "film", "models/tiny", "base_model", status="approved", content="weights")
    adapter = publish(session, files, "film", "adapters/mara", "adapter", [("base_model", base1.ref)],
                      status="approved")
    publish(session, files, "film", "shots/a", "shot_render", [("adapter", adapter.ref), ("base_model", base1.ref)])
    base2 = backlot.publish_version(session, "film", "models/tiny", [files("f", "weights")], kind="base_model",
                                    metadata={"registered": "again"}, status="approved")
    assert base2.number == 2 and base2.content_hash == base1.content_hash
    assert stale_map(session, "film") == {}
    base3 = publish(session, files, "film", "models/tiny", "base_model", status="approved", content="new weights")
    assert set(stale_map(session, "film")) == {adapter.ref, "film/shots/a@1"}
    assert stale_map(session, "film")[adapter.ref].superseded_by == base3.ref


def test_a_paint_over_does_not_make_itself_stale(session, files):
    """mara@3 painted over mara@2 (input init_image=mara@2), then approved: @3 is not stale."""
    backlot.create_project(session, "film")
    publish(session, files, "film", "characters/mara", "concept_art", status="approved")
    v2 = publish(session, files, "film", "characters/mara", "concept_art", status="approved")
    v3 = publish(session, files, "film", "characters/mara", "concept_art", [("init_image", v2.ref)])
    backlot.set_status(session, v3.ref, "approved")
    assert stale_map(session, "film") == {}
    # Under the latest policy too, where @3 supersedes @2 as soon as it is published.
    backlot.set_stale_policy(session, "film", "latest")
    publish(session, files, "film", "characters/mara", "concept_art", [("init_image", v3.ref)])
    assert stale_map(session, "film") == {}


def test_an_input_superseded_by_a_version_made_from_the_consumer_is_no_reason(session, files):
    """sketch@1 -> board@1 -> sketch@2 (a repaint of the board): board@1 is not stale because of it,
    but another consumer of sketch@1 is."""
    backlot.create_project(session, "film")
    sketch1 = publish(session, files, "film", "sketch", "concept_art", status="approved")
    board = publish(session, files, "film", "board", "reference", [("concept_art", sketch1.ref)], status="approved")
    other = publish(session, files, "film", "other", "reference", [("concept_art", sketch1.ref)])
    sketch2 = publish(session, files, "film", "sketch", "concept_art", [("init_image", board.ref)])
    backlot.set_status(session, sketch2.ref, "approved")
    stale = stale_map(session, "film")
    assert set(stale) == {other.ref}
    assert stale[other.ref].superseded_by == sketch2.ref
    before = cache_snapshot(session, backlot.get_project(session, "film").id)
    session.execute(text("SELECT backlot_rebuild_lineage_cache()"))
    assert cache_snapshot(session, backlot.get_project(session, "film").id) == before


# -- property test -------------------------------------------------------------------------

ROLES = ["concept_art", "adapter", "continuity", "regenerated_from", "training_data"]
STATUSES = ["wip", "review", "approved", "rejected"]

operation = st.one_of(
    st.tuples(st.just("publish"), st.integers(0, 3), st.lists(st.tuples(st.integers(0, 40), st.sampled_from(ROLES)),
                                                                 max_size=3), st.integers(0, 2)),
    st.tuples(st.just("status"), st.integers(0, 40), st.sampled_from(STATUSES)),
    st.tuples(st.just("policy"), st.sampled_from(["approved", "latest"])),
)


def reference_stale(versions, edges, policy):
    """The definition, computed naively: versions are (id, asset, number, status, content) in id order."""
    def pointer(asset):
        eligible = [w for w in versions.values()
                    if w[1] == asset and (w[3] == "approved" if policy == "approved" else w[3] != "rejected")]
        return max(eligible, key=lambda w: w[2]) if eligible else None

    def superseded(v):
        p = pointer(v[1])
        return p is not None and p[2] > v[2] and p[4] != v[4]

    def derives(descendant, ancestor):
        return descendant == ancestor or any(derives(i, ancestor) for c, i, role in edges
                                             if c == descendant and role != "regenerated_from")

    current = set()
    for asset in {v[1] for v in versions.values()}:
        mine = [v for v in versions.values() if v[1] == asset]
        current.add(max(mine, key=lambda v: v[2])[0])
        approved = [v for v in mine if v[3] == "approved"]
        if approved:
            current.add(max(approved, key=lambda v: v[2])[0])

    def live(i):
        return i in current or not superseded(versions[i])

    def flagged(c, i):  # superseded, and not by a version made from the consumer
        return superseded(versions[i]) and not derives(pointer(versions[i][1])[0], c)

    stale: dict[int, bool] = {}
    for vid in sorted(versions):
        stale[vid] = any(role != "regenerated_from" and (flagged(vid, i) or (stale[i] and live(i)))
                         for c, i, role in edges if c == vid)
    return {vid for vid in current if stale[vid]}


def cache_snapshot(session, project_id):
    flags = session.execute(text("SELECT id, superseded, live FROM versions WHERE project_id = :p ORDER BY id"),
                            {"p": project_id}).all()
    live = session.execute(text("SELECT version_id, input_id, role, input_superseded FROM live_inputs "
                                "WHERE project_id = :p ORDER BY 1, 2, 3"), {"p": project_id}).all()
    assets = session.execute(text("SELECT id, latest_number, approved_number FROM assets WHERE project_id = :p "
                                  "ORDER BY id"), {"p": project_id}).all()
    return flags, live, assets


_counter = itertools.count()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(operation, min_size=1, max_size=14))
def test_stale_matches_the_definition(session, files, ops):
    code = f"prop{next(_counter)}"
    project = backlot.create_project(session, code)
    versions: dict[int, tuple[int, int, int, str]] = {}
    edges: list[tuple[int, int, str]] = []
    policy = "approved"
    for op in ops:
        ids = sorted(versions)
        if op[0] == "publish":
            _, asset, picks, content = op  # three contents: identical re-publishes happen
            inputs = sorted({(ROLES.index(role), ids[i % len(ids)]) for i, role in picks} if ids else set())
            version = publish(session, files, code, f"a{asset}", inputs=[(ROLES[r], i) for r, i in inputs],
                              content=f"content {content}")
            if version.id in versions:  # the same files and inputs as the latest: no new version
                continue
            versions[version.id] = (version.id, asset, version.number, "wip", content)
            edges += [(version.id, i, ROLES[r]) for r, i in inputs]
        elif op[0] == "status" and ids:
            vid = ids[op[1] % len(ids)]
            backlot.set_status(session, vid, op[2])
            versions[vid] = (*versions[vid][:3], op[2], versions[vid][4])
        elif op[0] == "policy":
            policy = op[1]
            backlot.set_stale_policy(session, code, policy)
    found = {s.id: s for s in backlot.find_stale_versions(session, code)}
    assert set(found) == reference_stale(versions, edges, policy)
    for stale in found.values():  # every reported path is a real chain ending at a superseded input
        assert stale.reason.path[0] == stale.ref and stale.reason.path[-1] == stale.reason.input
        assert stale.reason.superseded_by is not None

    # The trigger-maintained cache equals a set-based rebuild from scratch.
    before = cache_snapshot(session, project.id)
    session.execute(text("SELECT backlot_rebuild_lineage_cache()"))
    assert cache_snapshot(session, project.id) == before
