"""Importing cuts on real PostgreSQL: revisions, shots, change lists on real turnover pairs."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
import pytest
from sqlalchemy import func, select

import backlot
from backlot.db.cuts import CutChange, CutItem, CutRevision
from backlot.db.models import Event, Shot
from backlot.editorial import diff_revisions, import_cut, list_items, list_revisions, set_settings
from backlot.editorial.errors import CutInputError
from backlot.editorial.reader import ReadOptions

JRUN_RULES = [{"kind": "marker", "pattern": r"^(?P<shot>RFE_[A-Z]+_\d{4})"},
              {"kind": "name", "pattern": r"(?P<shot>RFE_[A-Z]+_\d{4})"}]


def changed(result) -> dict[str, tuple]:
    return {c.shot: (c.kinds, c.head, c.tail) for c in result.changes if c.kinds != ("unchanged",)}


def counts(session) -> tuple[int, ...]:
    return tuple(session.scalar(select(func.count()).select_from(t)) for t in (CutRevision, CutItem, CutChange, Shot,
                                                                             Event))


def test_turnover_pair_090pc(session, samples):
    backlot.create_project(session, "film", fps="24")
    v05 = import_cut(session, "film", samples / "090PC_091MJ_100TC_V05_TURNOVER_20150123.edl", create_shots=True)
    assert v05.created and v05.revision.number == 1 and v05.revision.start_timecode == "06:02:15:17"
    assert (v05.revision.clip_count, v05.revision.matched_count, len(v05.shots_created)) == (115, 58, 58)
    assert v05.summary == {"added": 58}
    assert len(v05.unmatched) == 57 and v05.unmatched[0].reason == "no mapping rule found a shot code"
    v06 = import_cut(session, "film", samples / "090PC_091MJ_100TC_V06_TURNOVER_20150206.edl", create_shots=True)
    # What the editor changed (checked against the two files): the whole cut moved earlier in
    # record time (not a shot change); event 43 gained 8 frames at its tail; events 74 and 77
    # were slowed to 50% (M2 012.0), using 19 and 25 fewer source frames; event 64 gained its
    # *100_TC_0030 comment, so that shot appears.
    assert v06.revision.start_timecode == "05:59:52:00" and v06.revision.previous == 1
    assert changed(v06) == {
        "090_PC_0090": (("tail_extended",), 0, 8),
        "100_TC_0030": (("added",), 0, 0),
        "100_TC_0120": (("tail_trimmed", "retime_changed"), 0, -19),
        "100_TC_0140": (("tail_trimmed", "retime_changed"), 0, -25),
    }
    assert v06.summary["unchanged"] == 55
    shot = backlot.get_shot(session, "film", "100_TC_0120")
    assert (shot.cut_in, shot.cut_out, shot.handles) == (1001, 1029, 8)  # 29 source frames at 50% over 58
    assert next(c for c in v06.changes if c.shot == "100_TC_0120").explain() == \
        "tail trimmed by 19, retime 100% -> 50%, needs render: no version yet"


def test_turnover_pair_079(session, samples):
    backlot.create_project(session, "film", fps="24")
    import_cut(session, "film", samples / "079_HA_V05.edl", create_shots=True)
    result = import_cut(session, "film", samples / "079_HA_006.edl", create_shots=True)
    assert changed(result) == {
        "079_HA_0010": (("source_changed",), 0, 0),  # BOAT_TRAVELLING_ALONG_RIVER replaced by N005_C020_11099E
        "079_HA_0105": (("added",), 0, 0),
        "079_HA_0160": (("head_trimmed",), -10, 0),  # source in 15:58:40:19 -> 15:58:41:05
        "079_HA_0265": (("added",), 0, 0),
        "079_HA_0272": (("added",), 0, 0),
        "079_HA_0490": (("tail_extended",), 0, 5),  # source out 16:37:53:00 -> 16:37:53:05
        "079_HA_0210": (("omitted",), 0, 0), "079_HA_0260": (("omitted",), 0, 0),
        "079_HA_0340": (("omitted",), 0, 0), "079_HA_0460": (("omitted",), 0, 0),
    }
    shots = {s.code: s for s in backlot.list_shots(session, "film")}
    assert shots["079_HA_0160"].cut_in == 1011, "a head trim moves cut_in: shot frames follow the media"
    assert shots["079_HA_0210"].editorial_order is None, "omitted shots leave the editorial order"
    assert shots["079_HA_0010"].editorial_order == 1 and shots["079_HA_0010"].sequence == "079_HA"


@pytest.mark.parametrize("first, second", [("jrun_demo_absolute_frames1.edl", "jrun_demo_absolute_frames2.edl"),
                                           ("jrun_demo_relative_frames1.edl", "jrun_demo_relative_frames2.edl")])
def test_jrun_pairs_with_project_rules(session, samples, first, second):
    backlot.create_project(session, "jrun", fps="24")
    set_settings(session, "jrun", rules=JRUN_RULES, handles=4)
    import_cut(session, "jrun", samples / first, create_shots=True)
    result = import_cut(session, "jrun", samples / second, create_shots=True)
    # Event 2 now cuts in RFE_JRUN_0015 instead of 0020; event 3 starts 4 frames later.
    assert changed(result) == {"RFE_JRUN_0015": (("added",), 0, 0), "RFE_JRUN_0030": (("head_trimmed",), -4, 0),
                               "RFE_JRUN_0020": (("omitted",), 0, 0)}
    # Its "* LOC: 1020 ..." locator gives a frame count, not a timecode: OTIO drops it, the clip name maps it.
    assert next(i for i in list_items(session, "jrun") if i.shot == "RFE_JRUN_0015").matched_by == "name"
    assert backlot.get_shot(session, "jrun", "RFE_JRUN_0030").cut_in == 1005
    assert backlot.get_shot(session, "jrun", "RFE_JRUN_0030").handles == 4


def test_same_file_twice_creates_nothing(session, samples):
    backlot.create_project(session, "film", fps="24")
    first = import_cut(session, "film", samples / "079_HA_V05.edl", create_shots=True)
    before = counts(session)
    again = import_cut(session, "film", samples / "079_HA_V05.edl", create_shots=True)
    assert not again.created and again.revision.number == first.revision.number
    assert counts(session) == before
    assert [c.shot for c in again.changes] == [c.shot for c in first.changes]
    # Other settings make it a different import.
    other = import_cut(session, "film", samples / "079_HA_V05.edl", create_shots=True, handles=12)
    assert other.created and other.summary == {"unchanged": 36}
    assert backlot.get_shot(session, "film", "079_HA_0010").handles == 12


def test_reinstated_moved_and_repeated(session, edl):
    backlot.create_project(session, "film", fps="24")
    a = ("sq010_sh0010", "01:00:00:00", "01:00:02:00")
    b = ("sq010_sh0020", "02:00:00:00", "02:00:01:00")
    c = ("sq010_sh0030", "03:00:00:00", "03:00:01:00")
    d = ("sq010_sh0040", "04:00:00:00", "04:00:01:00")

    def cut(name, *events):
        rows, rec = [], 86400
        for clip, src_in, src_out, *rest in events:
            frames = pipeline_frames(src_out) - pipeline_frames(src_in)
            rows.append((clip, src_in, src_out, tc(rec), tc(rec + frames), *rest))
            rec += frames
        return import_cut(session, "film", edl(name, rows), create_shots=True)

    cut("r1.edl", a, b, c, d)
    second = cut("r2.edl", a, c, d)
    assert changed(second) == {"sq010_sh0020": (("omitted",), 0, 0)}
    third = cut("r3.edl", d, a, b, c, a)
    assert changed(third) == {"sq010_sh0040": (("moved",), 0, 0), "sq010_sh0020": (("reinstated",), 0, 0),
                              "sq010_sh0010": (("uses_changed",), 0, 0)}
    moved = next(x for x in third.changes if x.shot == "sq010_sh0040")
    assert (moved.old_position, moved.new_position) == (3, 1)
    assert moved.explain() == "moved from 3 to 1, needs render: no version yet"
    assert [s.code for s in backlot.list_shots(session, "film")] == [
        "sq010_sh0040", "sq010_sh0010", "sq010_sh0020", "sq010_sh0030"]
    # Same take in a longer version: a repeated shot covers both uses.
    fourth = cut("r4.edl", d, ("sq010_sh0010", "01:00:00:00", "01:00:01:00"), b, c,
                 ("sq010_sh0010", "01:00:01:12", "01:00:03:00"))
    assert changed(fourth) == {"sq010_sh0010": (("tail_extended",), 0, 24)}
    assert backlot.get_shot(session, "film", "sq010_sh0010").cut_out == 1072


def pipeline_frames(timecode: str) -> int:
    from backlot.editorial.frames import timecode_to_frames

    return timecode_to_frames(timecode, Fraction(24))


def tc(frames: int) -> str:
    from backlot.editorial.frames import frames_to_timecode

    return frames_to_timecode(frames, Fraction(24))


def test_unmatched_clips_and_shot_creation(session, samples):
    backlot.create_project(session, "film", fps="24")
    backlot.create_shot(session, "film", "079_HA_0010", sequence="seqA", frames=10, first_frame=2001, handles=2)
    result = import_cut(session, "film", samples / "079_HA_V05.edl")
    assert result.shots_created == [] and result.shots_updated == ["079_HA_0010"]
    shot = backlot.get_shot(session, "film", "079_HA_0010")
    # An existing shot keeps its start, sequence and handles; the cut sets its length and order.
    assert (shot.cut_in, shot.cut_out, shot.sequence, shot.handles, shot.editorial_order) == (2001, 2096, "seqA", 2, 1)
    # 57 clips: 36 name a shot each (comment lines), 21 name none.
    missing = [u for u in result.unmatched if u.code]
    assert len({u.code for u in missing}) == len(missing) == 35
    assert missing[0].reason == "no shot 079_HA_0030 in the project (pass --create-shots)"
    assert len([u for u in result.unmatched if not u.code]) == 21
    named = import_cut(session, "film", samples / "079_HA_V05.edl", create_shots=True, name_unmatched="ed_{position:04d}")
    assert len(named.shots_created) == 35 + 21 and "ed_0006" in named.shots_created
    assert named.unmatched == []


def test_a_shot_without_sequence_gets_the_cuts(session, samples):
    """Shots are updated from the import's writer thread, except when a sequence must be found or made."""
    backlot.create_project(session, "film", fps="24")
    backlot.create_shot(session, "film", "079_HA_0010", sequence="seqA", frames=10)
    backlot.create_shot(session, "film", "079_HA_0030", frames=10)
    result = import_cut(session, "film", samples / "079_HA_V05.edl")
    assert result.shots_updated == ["079_HA_0010", "079_HA_0030"]
    first, second = (backlot.get_shot(session, "film", code) for code in ("079_HA_0010", "079_HA_0030"))
    assert (first.sequence, first.editorial_order, second.sequence, second.editorial_order) == \
        ("seqA", 1, "079_HA", 2)
    assert [s.code for s in backlot.list_sequences(session, "film")] == ["079_HA", "seqA"]


def import_every_sample(session, folder: Path) -> tuple[int, int]:
    """Import every sample OTIO reads (the others must fail cleanly); (imported, revisions)."""
    backlot.create_project(session, "film", fps="24")
    imported = 0
    for path in sorted(folder.glob("*")):
        if path.suffix not in (".edl", ".xml"):
            continue
        try:
            otio.adapters.read_from_file(str(path), **({"rate": 24} if path.suffix == ".edl" else {}))
        except Exception:  # noqa: BLE001 - only the files OTIO reads cleanly must import
            with pytest.raises(CutInputError):
                import_cut(session, "film", path)
            continue
        result = import_cut(session, "film", path)
        assert result.revision.clip_count == len(list_items(session, "film"))
        imported += 1
    return imported, len(list_revisions(session, "film"))


# FINALSCHECK_EDL_TEST_140318-2.edl has the same bytes as FINALSCHECK_EDL_TEST_140318.edl: no new revision.
def test_every_shipped_sample_otio_reads_imports(session, samples):
    assert import_every_sample(session, samples) == (17, 16)


def test_every_sample_of_the_larger_set_imports(session, more_samples):
    assert import_every_sample(session, more_samples) == (32, 31)


def test_rate_mismatch_and_bad_input_write_nothing(session, samples, edl):
    backlot.create_project(session, "film", fps="25")
    before = counts(session)
    with pytest.raises(CutInputError, match="079_HA_V05.edl: the cut runs at 24 fps but project film at 25 fps"):
        import_cut(session, "film", samples / "079_HA_V05.edl", options=ReadOptions(rate=Fraction(24)))
    with pytest.raises(CutInputError, match="blue_frame_5_to_25.xml: the cut runs at 24 fps"):
        import_cut(session, "film", samples / "blue_frame_5_to_25.xml")
    bad = edl("bad.edl", [("a", "01:00:00:00", "01:00:01:00", "01:00:00:00", "01:00:01:00"),
                          ("b", "01:00:00:00", "01:00:00:00", "01:00:01:00", "01:00:01:00")])
    with pytest.raises(CutInputError, match="bad.edl, line 7, event 002, clip 'b': the clip has a zero duration"):
        import_cut(session, "film", bad)
    assert counts(session) == before


def test_diff_between_any_revisions(session, samples):
    backlot.create_project(session, "jrun", fps="24")
    set_settings(session, "jrun", rules=JRUN_RULES)
    import_cut(session, "jrun", samples / "jrun_demo_absolute_frames1.edl", create_shots=True)
    import_cut(session, "jrun", samples / "jrun_demo_absolute_frames2.edl", create_shots=True)
    import_cut(session, "jrun", samples / "jrun_demo_absolute_frames1.edl", create_shots=True)
    latest = diff_revisions(session, "jrun")
    assert latest.stored and (latest.from_revision, latest.to_revision) == (2, 3)
    assert {c.shot: c.kinds for c in latest.changes if c.kinds != ("unchanged",)} == {
        "RFE_JRUN_0020": ("reinstated",), "RFE_JRUN_0030": ("head_extended",), "RFE_JRUN_0015": ("omitted",)}
    same = diff_revisions(session, "jrun", 1, 3)
    assert not same.stored and {c.kinds for c in same.changes} == {("unchanged",)}
    first = diff_revisions(session, "jrun", to_revision=1)
    assert first.from_revision is None and {c.kinds for c in first.changes} == {("added",)}


def _committed_counts() -> tuple[int, ...]:
    with backlot.session() as s:
        return counts(s)


@pytest.mark.parametrize("fails", ["server", "python"])
def test_an_import_that_fails_while_its_rows_are_stored_writes_nothing(db_url, samples, monkeypatch, fails):
    """Rows go to the server from a worker thread: a refused row, or an error in the Python working
    meanwhile, ends the import with that error, the COPY abandoned and nothing kept."""
    from backlot.editorial import ingest
    from backlot.errors import DatabaseError

    with backlot.session() as s:
        backlot.create_project(s, "film", fps="24")
        import_cut(s, "film", samples / "090PC_091MJ_100TC_V05_TURNOVER_20150123.edl", create_shots=True)
    before = _committed_counts()
    with monkeypatch.context() as patch:
        if fails == "server":  # a change row whose shot_code is NULL, which the table refuses
            patch.setattr(ingest, "_change_line", lambda revision_id, c: f"{revision_id}\t\\N\t{{}}" + "\t\\N" * 8
                          + "\n")
            expected = pytest.raises(DatabaseError, match="the database refused the cut's cut_changes: null value")
        else:
            def broken_diff(*args, **kwargs):
                raise RuntimeError("diff broke")
            patch.setattr(ingest, "diff_cuts", broken_diff)
            expected = pytest.raises(RuntimeError, match="diff broke")
        with expected:
            with backlot.session() as s:
                import_cut(s, "film", samples / "090PC_091MJ_100TC_V06_TURNOVER_20150206.edl", create_shots=True)
    assert _committed_counts() == before
    with backlot.session() as s:  # the same import goes through afterwards
        assert import_cut(s, "film", samples / "090PC_091MJ_100TC_V06_TURNOVER_20150206.edl", create_shots=True).created
