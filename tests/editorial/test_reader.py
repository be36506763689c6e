"""Reading edit files and flattening them into the cut: real samples, built timelines, bad input."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
import pytest

from backlot.editorial.errors import CutInputError
from backlot.editorial.flatten import POLICY_ALL, flatten_cut
from backlot.editorial.frames import timecode_to_frames
from backlot.editorial.reader import ReadOptions, read_cut_file

R24 = 24.0


def rt(frames: int, rate: float = R24) -> otio.opentime.RationalTime:
    return otio.opentime.RationalTime(frames, rate)


def clip(name: str, start: int, frames: int, rate: float = R24) -> otio.schema.Clip:
    return otio.schema.Clip(name=name, source_range=otio.opentime.TimeRange(rt(start, rate), rt(frames, rate)))


def gap(frames: int) -> otio.schema.Gap:
    return otio.schema.Gap(source_range=otio.opentime.TimeRange(rt(0), rt(frames)))


def track(name: str, *items) -> otio.schema.Track:
    t = otio.schema.Track(name=name, kind=otio.schema.TrackKind.Video)
    for item in items:
        t.append(item)
    return t


def write(tmp_path, timeline, name="cut.otio"):
    path = tmp_path / name
    otio.adapters.write_to_file(timeline, str(path))
    return path


def pieces(clips):
    return [(c.name, c.record_in, c.record_out_excl, c.source_in) for c in clips]


# -- which clips make the cut ------------------------------------------------------------------


def test_top_most_clips_win_and_split_what_they_cover(tmp_path):
    timeline = otio.schema.Timeline(name="layers", global_start_time=rt(86400))
    timeline.tracks.append(track("V1", clip("sq010_sh0010", 1000, 100)))
    timeline.tracks.append(track("V2", gap(40), clip("sq010_sh0020", 500, 20)))
    read = read_cut_file(write(tmp_path, timeline))
    assert read.rate == 24 and read.adapter == "otio_json"
    visible = flatten_cut(read)
    assert pieces(visible) == [("sq010_sh0010", 86400, 86440, 1000), ("sq010_sh0020", 86440, 86460, 500),
                               ("sq010_sh0010", 86460, 86500, 1060)]
    assert [c.position for c in visible] == [1, 2, 3] and [c.track for c in visible] == ["V1", "V2", "V1"]
    assert pieces(flatten_cut(read, POLICY_ALL)) == [("sq010_sh0010", 86400, 86500, 1000),
                                                     ("sq010_sh0020", 86440, 86460, 500)]
    assert pieces(flatten_cut(read, "V1")) == [("sq010_sh0010", 86400, 86500, 1000)]
    assert pieces(flatten_cut(read, "2")) == [("sq010_sh0020", 86440, 86460, 500)]
    with pytest.raises(CutInputError, match="no video track 'V9'"):
        flatten_cut(read, "V9")


def test_disabled_tracks_and_clips_and_audio_do_not_count(tmp_path):
    timeline = otio.schema.Timeline(name="t")
    timeline.tracks.append(track("V1", clip("a", 0, 10), clip("b", 0, 10)))
    top = track("V2", clip("hidden", 0, 20))
    top.enabled = False
    timeline.tracks.append(top)
    timeline.tracks[0][1].enabled = False
    audio = otio.schema.Track(name="A1", kind=otio.schema.TrackKind.Audio)
    audio.append(clip("music", 0, 50))
    timeline.tracks.append(audio)
    assert pieces(flatten_cut(read_cut_file(write(tmp_path, timeline)))) == [("a", 0, 10, 0)]


def test_nested_stacks_are_composited_and_trimmed(tmp_path):
    inner = otio.schema.Stack(name="compound", source_range=otio.opentime.TimeRange(rt(5), rt(40)))
    inner.append(track("in1", clip("c", 100, 50)))
    inner.append(track("in2", gap(10), clip("d", 200, 10)))
    timeline = otio.schema.Timeline(name="nested")
    timeline.tracks.append(track("V1", clip("a", 0, 24), inner, clip("b", 0, 24)))
    cut = flatten_cut(read_cut_file(write(tmp_path, timeline)))
    # The compound shows its frames 5..45 from record 24: c from 105, d over c at 10..20, then c again.
    assert pieces(cut) == [("a", 0, 24, 0), ("c", 24, 29, 105), ("d", 29, 39, 200), ("c", 39, 64, 120),
                           ("b", 64, 88, 0)]
    assert cut[2].path == (0, 1, 1, 1)


def test_transitions_make_neighbours_need_more_media(samples):
    read = read_cut_file(samples / "raphe_temp1_rfe_R01_v01_TRANSITIONS.edl", default_rate=Fraction(24))
    cut = flatten_cut(read)
    first, second = cut[0], cut[1]
    assert first.transition_out == 30 and first.needed_out_excl == first.source_out_excl + 30
    assert second.transition_in == 0 and second.needed_in == second.source_in
    assert all(c.needed_out_excl - c.needed_in >= c.duration for c in cut)


def test_record_timecode_offsets_are_kept(samples, tmp_path):
    read = read_cut_file(samples / "079_HA_V05.edl", default_rate=Fraction(24))
    cut = flatten_cut(read)
    assert cut[0].record_in == timecode_to_frames("06:00:00:00", Fraction(24))
    assert cut[0].source_in == timecode_to_frames("01:00:08:23", Fraction(24))
    assert all(a.record_out_excl == b.record_in for a, b in zip(cut, cut[1:]))
    assert cut[0].where.line == 3 and cut[0].where.event == "000001"


def test_retimes_and_freezes_from_an_edl(samples, edl):
    v06 = flatten_cut(read_cut_file(samples / "090PC_091MJ_100TC_V06_TURNOVER_20150206.edl",
                                    default_rate=Fraction(24)))
    slowed = next(c for c in v06 if c.name == "100_TC_0120_V1003_TEMP_FS.MOV")
    assert slowed.retime.speed == Fraction(1, 2) and slowed.duration == 58
    assert (slowed.source_in, slowed.source_out_excl) == (86405, 86434)  # 29 source frames over 58 record frames
    path = edl("freeze.edl", [("hold", "01:00:00:00", "01:00:00:01", "01:00:00:00", "01:00:02:00",
                               "REEL=hold")])
    path.write_text(path.read_text().replace("* FROM CLIP NAME:  hold", "M2   hold       000.0    01:00:00:00\n"
                                                                         "* FROM CLIP NAME:  hold"))
    frozen = flatten_cut(read_cut_file(path, default_rate=Fraction(24)))[0]
    assert frozen.retime.freeze and (frozen.source_in, frozen.source_out_excl) == (86400, 86401)
    assert frozen.duration == 48


def test_drop_frame_edl(edl):
    path = edl("df.edl", [("a", "01:00:00;00", "01:00:10;00", "01:00:00;00", "01:00:10;00"),
                          ("b", "00:10:00;00", "00:10:01;00", "01:00:10;00", "01:00:11;00")], fcm="DROP FRAME")
    read = read_cut_file(path, ReadOptions(rate=Fraction(30000, 1001)))
    assert read.rate == Fraction(30000, 1001) and read.drop_frame
    cut = flatten_cut(read)
    assert cut[0].record_in == timecode_to_frames("01:00:00;00", read.rate) == 107892
    assert cut[0].duration == 300 - 0  # ten seconds of labels, no minute boundary crossed
    assert cut[1].source_in == 17982


def test_reader_options_pass_through(samples, edl):
    with pytest.raises(CutInputError, match="line 16, event 006: .*Source and record duration don't match"):
        read_cut_file(samples / "JA_DIEDL_SG_TEST_140212.edl", default_rate=Fraction(24))
    # With the option OTIO reads it; the event with no source frames is then a zero-length clip.
    read = read_cut_file(samples / "JA_DIEDL_SG_TEST_140212.edl", ReadOptions(ignore_timecode_mismatch=True),
                         default_rate=Fraction(24))
    assert read.options.ignore_timecode_mismatch
    with pytest.raises(CutInputError, match="line 15, event 006, clip 'END': the clip has a zero duration"):
        flatten_cut(read)
    at25 = edl("at25.edl", [("a", "01:00:00:00", "01:00:01:00", "01:00:00:00", "01:00:01:00")])
    assert flatten_cut(read_cut_file(at25, ReadOptions(rate=Fraction(25)), default_rate=Fraction(24)))[0].duration == 25
    with pytest.raises(CutInputError, match="takes no option 'colour'"):
        read_cut_file(samples / "SR_008.edl", ReadOptions(extra=(("colour", "red"),)))
    with pytest.raises(CutInputError, match="no ignore_timecode_mismatch option"):
        read_cut_file(samples / "blue_frame_5_to_25.xml", ReadOptions(ignore_timecode_mismatch=True))
    with pytest.raises(CutInputError, match="blue_frame_5_to_25.xml: runs at 24 fps, not the 25 given with --rate"):
        read_cut_file(samples / "blue_frame_5_to_25.xml", ReadOptions(rate=Fraction(25)))


# -- real files --------------------------------------------------------------------------------


def sample_files() -> list[Path]:
    """The shipped samples, and the larger optional set where it is present (each name once)."""
    from tests.editorial.conftest import MORE_SAMPLES, SAMPLES

    found: dict[str, Path] = {}
    for folder in (SAMPLES, MORE_SAMPLES):
        if folder.is_dir():
            for p in sorted(folder.glob("*")):
                if p.suffix in (".edl", ".xml"):
                    found.setdefault(p.name, p)
    return list(found.values())


@pytest.mark.parametrize("path", sample_files(), ids=lambda p: p.name)
def test_every_sample_reads_or_fails_clearly(path):
    name = path.name
    try:
        otio.adapters.read_from_file(str(path), rate=24) if name.endswith(".edl") else \
            otio.adapters.read_from_file(str(path))
        otio_reads = True
    except Exception:  # noqa: BLE001 - only asking whether OTIO reads it
        otio_reads = False
    try:
        cut = flatten_cut(read_cut_file(path, default_rate=Fraction(24)))
    except CutInputError as exc:
        assert not otio_reads or "no video" in str(exc), f"OTIO reads {name}, Backlot must too: {exc}"
        assert str(exc).startswith(name)
        return
    assert cut and all(c.duration > 0 for c in cut)


# -- bad input ---------------------------------------------------------------------------------


def test_bad_files_get_one_clear_error(tmp_path, samples, edl):
    def error(path, **options) -> str:
        with pytest.raises(CutInputError) as info:
            flatten_cut(read_cut_file(path, ReadOptions(**options), default_rate=Fraction(24)))
        return str(info.value)

    (tmp_path / "cut.xyz").write_text("hello")
    assert "unknown format '.xyz'" in error(tmp_path / "cut.xyz") and ".edl" in error(tmp_path / "cut.xyz")
    assert "no such file" in error(tmp_path / "missing.edl")
    (tmp_path / "empty.edl").write_text("  \n")
    assert error(tmp_path / "empty.edl") == "empty.edl: is empty"
    (tmp_path / "binary.edl").write_bytes(bytes(range(256)) * 4)
    assert "binary file" in error(tmp_path / "binary.edl")
    (tmp_path / "binary.otio").write_bytes(bytes(range(256)) * 4)
    assert error(tmp_path / "binary.otio").startswith("binary.otio: cannot be read as otio_json")
    text = (samples / "079_HA_V05.edl").read_text()
    (tmp_path / "truncated.edl").write_text(text[:text.index("000003") + 40])
    assert error(tmp_path / "truncated.edl").startswith("truncated.edl, line 11, event 000003: cannot be read")
    (tmp_path / "truncated.otio").write_text(otio.adapters.write_to_string(
        otio.schema.Timeline(tracks=[track("V1", clip("a", 0, 10))]))[:200])
    assert "cannot be read as otio_json" in error(tmp_path / "truncated.otio")
    zero = edl("zero.edl", [("a", "01:00:00:00", "01:00:01:00", "01:00:00:00", "01:00:01:00"),
                            ("b", "01:00:00:00", "01:00:00:00", "01:00:01:00", "01:00:01:00")])
    assert error(zero) == ("zero.edl, line 7, event 002, clip 'b': the clip has a zero duration (0 frames): "
                           "fix its source/record timecodes in the edit")
    negative = edl("negative.edl", [("a", "01:00:01:00", "01:00:00:00", "01:00:01:00", "01:00:00:00")])
    assert "line 4, event 001, clip 'a': the clip has a negative duration (-24 frames)" in error(negative)
    # DOS end-of-file padding is dropped; the stray "*FCM" header line is then what OTIO refuses.
    assert error(samples / "pxy5.edl").startswith("pxy5.edl, line 3: cannot be read as cmx_3600 (EDLParseError: "
                                                  "Unknown event type)")
    audio = edl("audio.edl", [("a", "01:00:00:00", "01:00:01:00", "01:00:00:00", "01:00:01:00")])
    audio.write_text(audio.read_text().replace(" V  ", " A  "))
    assert error(audio) == "audio.edl: has no video: no video track in the timeline (audio only?)"
    assert "no OTIO adapter named 'nope'" in error(samples / "SR_008.edl", adapter="nope")
    assert "writes files but cannot read" in error(samples / "SR_008.edl", adapter="svg")
