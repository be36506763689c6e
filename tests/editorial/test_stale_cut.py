"""Cut-aware staleness: a shot version that does not cover its shot's cut (with handles) is stale."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

import backlot
from backlot.editorial import import_cut

ONE_SHOT = [("sq010_sh0010", "01:00:00:00", "01:00:02:00", "01:00:00:00", "01:00:02:00"),
            ("sq010_sh0020", "02:00:00:00", "02:00:01:00", "01:00:02:00", "01:00:03:00")]
LONGER = [("sq010_sh0010", "01:00:00:00", "01:00:02:10", "01:00:00:00", "01:00:02:10"),
          ("sq010_sh0020", "02:00:00:00", "02:00:01:00", "01:00:02:10", "01:00:03:10")]


def render(session, files, shot, frame_range, inputs=(), status="wip"):
    metadata = {"frame_range": frame_range} if frame_range is not None else {}
    return backlot.publish_version(session, "film", f"shots/{shot}/main", [files(f"{shot}.png", str(frame_range))],
                                    kind="shot_render", shot=shot, metadata=metadata, inputs=list(inputs),
                                    status=status)


def stale(session):
    return {s.ref: s.reason for s in backlot.find_stale_versions(session, "film")}


def test_a_longer_cut_makes_the_shot_and_what_follows_it_stale(session, files, edl):
    backlot.create_project(session, "film", fps="24")
    import_cut(session, "film", edl("v1.edl", ONE_SHOT), create_shots=True)
    sh10 = backlot.get_shot(session, "film", "sq010_sh0010")
    assert (sh10.cut_in, sh10.cut_out, sh10.handles) == (1001, 1048, 8)
    a1 = render(session, files, "sq010_sh0010", [993, 1056], status="approved")
    b1 = render(session, files, "sq010_sh0020", [993, 1032], [("continuity", a1.ref)], status="approved")
    assert stale(session) == {}

    result = import_cut(session, "film", edl("v2.edl", LONGER))
    change = next(c for c in result.changes if c.shot == "sq010_sh0010")
    assert change.kinds == ("tail_extended",) and change.tail == 10 and change.needs_render
    assert change.detail["impact"]["missing_tail"] == 10 and change.detail["impact"]["version"] == a1.ref
    assert next(c for c in result.changes if c.shot == "sq010_sh0020").needs_render is False

    reasons = stale(session)
    assert set(reasons) == {a1.ref, b1.ref}
    own = reasons[a1.ref]
    assert (own.cause, own.role, own.input, own.path) == ("cut", "cut", a1.ref, [a1.ref])
    assert (own.cut.shot, own.cut.need_first, own.cut.need_last, own.cut.have_first, own.cut.have_last) == (
        "sq010_sh0010", 993, 1066, 993, 1056)
    assert own.superseded_by == "cut of sq010_sh0010 needs 993-1066, version holds 993-1056"
    follows = reasons[b1.ref]
    assert (follows.cause, follows.role, follows.path) == ("cut", "continuity", [b1.ref, a1.ref])

    # A new render that covers the cut, approved, replaces it; the neighbour is now stale by lineage.
    a2 = render(session, files, "sq010_sh0010", [993, 1066])
    assert set(stale(session)) == {a1.ref, b1.ref}, "the approved version is still current and still short"
    backlot.set_status(session, a2.ref, "approved")
    reasons = stale(session)
    assert set(reasons) == {b1.ref} and reasons[b1.ref].cause == "superseded"


def test_handles_unknown_and_malformed_ranges(session, files, edl):
    backlot.create_project(session, "film", fps="24")
    import_cut(session, "film", edl("v1.edl", ONE_SHOT), create_shots=True)
    unknown = render(session, files, "sq010_sh0010", None)
    malformed = render(session, files, "sq010_sh0020", "frames 1 to 9")
    reasons = stale(session)
    assert set(reasons) == {malformed.ref}, "a version that records no frame range is not judged"
    assert reasons[malformed.ref].cut.have_first is None
    assert "malformed frame_range" in reasons[malformed.ref].superseded_by
    text_range = render(session, files, "sq010_sh0020", "993-1032")  # the CLI's --meta frame_range=993-1032
    assert text_range.ref not in stale(session)
    assert unknown.ref not in stale(session)
    # More handles than the render has: stale until it is re-rendered.
    import_cut(session, "film", edl("v1.edl", ONE_SHOT), handles=12)
    assert set(stale(session)) == {text_range.ref}


def coverage_snapshot(session):
    return session.execute(text("SELECT * FROM cut_uncovered ORDER BY version_id")).all()


_counter = itertools.count()

operation = st.one_of(
    st.tuples(st.just("publish"), st.integers(0, 2), st.integers(980, 1010), st.integers(1030, 1070)),
    st.tuples(st.just("publish_unknown"), st.integers(0, 2)),
    st.tuples(st.just("status"), st.integers(0, 30), st.sampled_from(["wip", "approved", "rejected"])),
    st.tuples(st.just("cut"), st.integers(0, 2), st.integers(995, 1005), st.integers(1020, 1060), st.integers(0, 10)),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(operation, min_size=1, max_size=12))
def test_cut_staleness_matches_the_definition(session, files, ops):
    """The cache-driven answer equals the definition evaluated in Python, and a full rebuild."""
    code = f"cov{next(_counter)}"
    backlot.create_project(session, code)
    shots = [f"sh{i}" for i in range(3)]
    for shot in shots:
        backlot.create_shot(session, code, shot, frames=40, handles=4)
    ranges = {shot: (1001, 1040, 4) for shot in shots}
    versions: dict[int, list] = {}  # id -> [shot, number, status, frame range or None]
    for op in ops:
        if op[0] in ("publish", "publish_unknown"):
            shot = shots[op[1]]
            frame_range = [op[2], op[3]] if op[0] == "publish" else None
            v = backlot.publish_version(session, code, f"shots/{shot}/main", [files("f", "x")], kind="shot_render",
                                         shot=shot, metadata={"frame_range": frame_range} if frame_range else {})
            # Identical to the shot's latest version: that one comes back (reused), its status kept.
            versions.setdefault(v.id, [shot, v.number, "wip", frame_range])
        elif op[0] == "status" and versions:
            vid = sorted(versions)[op[1] % len(versions)]
            backlot.set_status(session, vid, op[2])
            versions[vid][2] = op[2]
        elif op[0] == "cut":
            shot = shots[op[1]]
            session.execute(text("UPDATE shots SET cut_in = :a, cut_out = :b, handles = :h "
                                 "WHERE code = :c AND project_id = (SELECT id FROM projects WHERE code = :p)"),
                            {"a": op[2], "b": op[3], "h": op[4], "c": shot, "p": code})
            ranges[shot] = (op[2], op[3], op[4])
    expected = set()
    for shot in shots:
        mine = {vid: v for vid, v in versions.items() if v[0] == shot}
        if not mine:
            continue
        latest = max(mine, key=lambda i: mine[i][1])
        approved = [i for i, v in mine.items() if v[2] == "approved"]
        current = {latest} | ({max(approved, key=lambda i: mine[i][1])} if approved else set())
        cut_in, cut_out, handles = ranges[shot]
        for vid in current:
            have = mine[vid][3]
            if have is not None and not (have[0] <= cut_in - handles and cut_out + handles <= have[1]):
                expected.add(vid)
    found = {s.id for s in backlot.find_stale_versions(session, code) if s.reason.cause == "cut"}
    assert found == expected
    before = coverage_snapshot(session)
    session.execute(text("SELECT backlot_rebuild_cut_coverage()"))
    assert coverage_snapshot(session) == before
