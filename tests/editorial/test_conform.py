"""Conform: the cut written back with clips pointing at shot versions, structure kept."""

from __future__ import annotations

import json
from pathlib import Path

import opentimelineio as otio
import pytest

import backlot
from backlot.editorial import conform, conform_cut, conform_json, import_cut
from backlot.editorial.errors import CutInputError

R = 24.0


def rt(frames):
    return otio.opentime.RationalTime(frames, R)


def tr(start, frames):
    return otio.opentime.TimeRange(rt(start), rt(frames))


def build_timeline() -> otio.schema.Timeline:
    """Two video tracks, a gap, a transition, a marker, a retime, a nested stack, an audio track."""
    timeline = otio.schema.Timeline(name="reel1", global_start_time=rt(86400))
    v1 = otio.schema.Track(name="V1")
    a = otio.schema.Clip(name="sq010_sh0010_v3.mov", source_range=tr(500, 48),
                         media_reference=otio.schema.ExternalReference("file:///editorial/sq010_sh0010_v3.mov"))
    a.markers.append(otio.schema.Marker(name="note: trim?", marked_range=tr(510, 1)))
    b = otio.schema.Clip(name="sq010_sh0020_v1.mov", source_range=tr(200, 24))
    b.effects.append(otio.schema.LinearTimeWarp(time_scalar=0.5))
    nested = otio.schema.Stack(name="compound")
    inner = otio.schema.Track(name="inner")
    inner.append(otio.schema.Clip(name="sq010_sh0030_v2.mov", source_range=tr(0, 30)))
    nested.append(inner)
    v1.extend([a, otio.schema.Transition(in_offset=rt(4), out_offset=rt(4)), b, otio.schema.Gap(source_range=tr(0, 10)),
               nested, otio.schema.Clip(name="title card", source_range=tr(0, 20))])
    v2 = otio.schema.Track(name="V2")
    v2.extend([otio.schema.Gap(source_range=tr(0, 60)),
               otio.schema.Clip(name="sq010_sh0040_v1.mov", source_range=tr(1000, 6))])
    audio = otio.schema.Track(name="A1", kind=otio.schema.TrackKind.Audio)
    audio.append(otio.schema.Clip(name="music", source_range=tr(0, 100)))
    timeline.tracks.extend([v1, v2, audio])
    return timeline


def publish_frames(session, files, shot, first, last, status="wip", folder="frames", tag="", movie=False):
    paths = [files(f"{shot}{tag}/{folder}/frame.{n:04d}.png", f"{shot}{tag}:{n}") for n in range(first, last + 1)]
    names = [f"{folder}/{p.name}" for p in paths]
    if movie:
        paths.append(files(f"{shot}{tag}/preview.mp4", "not really a movie"))
        names.append("preview.mp4")
    return backlot.publish_version(session, "film", f"shots/{shot}/main", paths, kind="shot_render", shot=shot,
                                    names=names, status=status, metadata={"frame_range": [first, last]})


def structure(timeline):
    """Everything conform must keep: per item its kind, name, duration, markers and effects."""
    def walk(composition):
        for item in composition:
            row = [type(item).__name__, item.name]
            if not isinstance(item, otio.schema.Transition):
                row += [item.duration().value, [m.name for m in getattr(item, "markers", [])],
                        [e.schema_name() for e in getattr(item, "effects", [])]]
            yield tuple(map(str, row))
            if isinstance(item, (otio.schema.Track, otio.schema.Stack)):
                yield from walk(item)
    return list(walk(timeline.tracks))


@pytest.fixture
def conformed_project(session, files, tmp_path):
    backlot.create_project(session, "film", fps="24")
    source = tmp_path / "reel1.otio"
    otio.adapters.write_to_file(build_timeline(), str(source))
    result = import_cut(session, "film", source, create_shots=True)
    assert [u.clip for u in result.unmatched] == ["title card"]
    return source


def test_conform_relinks_clips_and_keeps_the_structure(session, files, tmp_path, conformed_project):
    shots = {s.code: s for s in backlot.list_shots(session, "film")}
    sh10 = shots["sq010_sh0010"]
    # sh0010 needs 1001..1052 (48 frames, 4 more for the transition) plus 8 handles.
    assert (sh10.cut_in, sh10.cut_out) == (1001, 1052)
    v10 = publish_frames(session, files, "sq010_sh0010", 993, 1060, status="approved")
    publish_frames(session, files, "sq010_sh0010", 993, 1060, tag="b")  # a newer wip
    v20 = publish_frames(session, files, "sq010_sh0020", 990, 1030)  # 50%: 12 source frames + 2 for the transition
    short = publish_frames(session, files, "sq010_sh0030", 1001, 1010)  # does not cover its cut
    out = tmp_path / "conformed.otio"
    result = conform_cut(session, "film", out)
    by_clip = {c.clip: c for c in result.clips}
    assert by_clip["sq010_sh0010_v3.mov"].status == "relinked" and by_clip["sq010_sh0010_v3.mov"].version == v10.ref
    assert by_clip["sq010_sh0020_v1.mov"].status == "relinked"
    assert by_clip["sq010_sh0030_v2.mov"].status == "not_covered" and by_clip["sq010_sh0030_v2.mov"].version == short.ref
    assert by_clip["sq010_sh0040_v1.mov"].status == "no_version"
    assert by_clip["title card"].status == "unmatched"
    assert result.relinked == 2 and len(result.kept) == 3

    original, written = build_timeline(), otio.adapters.read_from_file(str(out))
    assert structure(written) == structure(original)
    assert written.global_start_time == original.global_start_time
    clips = {c.name: c for c in written.find_clips()}
    a = clips["sq010_sh0010_v3.mov"]
    assert isinstance(a.media_reference, otio.schema.ImageSequenceReference)
    assert a.media_reference.target_url_base.endswith(f"/versions/{v10.content_hash}/frames/")
    assert (a.media_reference.name_prefix, a.media_reference.name_suffix, a.media_reference.start_frame,
            a.media_reference.frame_zero_padding) == ("frame.", ".png", 993, 4)
    assert a.source_range == tr(1001, 48), "source in 500 was shot frame 1001; same duration"
    assert dict(a.metadata["backlot"]) == {"shot": "sq010_sh0010", "version": v10.ref, "version_id": v10.id,
                                           "shot_in": 1001, "revision": 1,
                                           "original_media": "file:///editorial/sq010_sh0010_v3.mov"}
    assert a.media_reference.abstract_target_url("#").startswith("file://")
    b = clips["sq010_sh0020_v1.mov"]
    assert b.source_range == tr(1003, 24) and b.effects[0].time_scalar == 0.5  # 2 frames of transition before it
    assert b.metadata["backlot"]["version"] == v20.ref
    for name in ("sq010_sh0030_v2.mov", "sq010_sh0040_v1.mov", "title card"):
        assert clips[name].source_range == next(c for c in original.find_clips() if c.name == name).source_range
        assert "backlot" not in clips[name].metadata

    latest = conform_cut(session, "film", tmp_path / "latest.otio", policy="latest")
    assert {c.clip: c.version for c in latest.clips}["sq010_sh0010_v3.mov"] == "film/shots/sq010_sh0010/main@2"


def test_conform_to_other_formats_and_errors(session, files, tmp_path, samples):
    backlot.create_project(session, "film", fps="24")
    import_cut(session, "film", samples / "079_HA_V05.edl", create_shots=True)
    shot = backlot.get_shot(session, "film", "079_HA_0010")
    version = publish_frames(session, files, "079_HA_0010", shot.cut_in - shot.handles, shot.cut_out + shot.handles,
                             movie=True)
    edl = tmp_path / "conformed.edl"
    result = conform_cut(session, "film", edl)
    assert result.adapter == "cmx_3600" and result.relinked == 1
    first_event = edl.read_text().splitlines()[2]
    assert first_event.split()[4:8] == ["00:00:41:17", "00:00:45:17", "06:00:00:00", "06:00:04:00"]  # 1001 at 24 fps
    assert version.content_hash in edl.read_text()
    # FCP 7 XML cannot hold image sequences: the version's movie is used, placed by its frame range.
    xml = tmp_path / "conformed.xml"
    assert conform_cut(session, "film", xml).relinked == 1
    back = list(otio.adapters.read_from_file(str(xml)).find_clips())
    assert len(back) == 57 and back[0].media_reference.target_url.endswith(f"{version.content_hash}/preview.mp4")
    assert back[0].source_range.start_time.value == 8  # shot frame 1001 in a movie that starts at 993

    with pytest.raises(CutInputError, match="conformed.xyz: no OTIO writer for '.xyz'"):
        conform_cut(session, "film", tmp_path / "conformed.xyz")
    backlot.create_project(session, "layers", fps="24")
    source = tmp_path / "reel1.otio"
    otio.adapters.write_to_file(build_timeline(), str(source))
    import_cut(session, "layers", source)
    with pytest.raises(CutInputError, match="layers.edl: the cmx_3600 writer cannot write this cut"):
        conform_cut(session, "layers", tmp_path / "layers.edl")
    assert sorted(p.name for p in tmp_path.iterdir() if "layers" in p.name or p.name.startswith(".")) == []


def _read_back(path):
    """A conformed file as OTIO reads it, in OTIO's own serialization (so two files compare exactly)."""
    return otio.adapters.read_from_file(str(path)).to_json_string()


def _conform_both_ways(session, tmp_path, monkeypatch, name, **options):
    """Conform through the JSON fast path and through OTIO; returns both results and files."""
    taken = []
    real = conform._fast_cut
    monkeypatch.setattr(conform, "_fast_cut", lambda *a: taken.append(real(*a)) or taken[-1])
    fast = conform_cut(session, "film", tmp_path / f"{name}_fast.otio", **options)
    monkeypatch.setattr(conform, "_fast_cut", lambda *a: None)
    slow = conform_cut(session, "film", tmp_path / f"{name}_otio.otio", **options)
    monkeypatch.setattr(conform, "_fast_cut", real)  # not undo(): that would also drop the env fixture's home
    return taken[0] is not None, fast, slow


@pytest.mark.parametrize("media", ["sequence", "movie"])
def test_fast_otio_conform_reads_back_as_the_otio_path(session, files, tmp_path, monkeypatch, conformed_project,
                                                       media):
    publish_frames(session, files, "sq010_sh0010", 993, 1060, status="approved", movie=True)
    publish_frames(session, files, "sq010_sh0020", 990, 1030, movie=True)
    publish_frames(session, files, "sq010_sh0030", 1001, 1010)  # not covered: keeps its media
    fast_taken, fast, slow = _conform_both_ways(session, tmp_path, monkeypatch, media, media=media)
    assert fast_taken
    assert [c.to_dict() for c in fast.clips] == [c.to_dict() for c in slow.clips] and fast.relinked == 2
    assert _read_back(fast.output) == _read_back(slow.output)
    # What conform does not change is copied as the stored file's bytes (here a clip's markers, indented).
    stored = conform_json._structs_fit().decode(conformed_project.read_bytes())
    markers = bytes(stored.tracks.children[0].children[0].markers)
    assert b"\n" in markers and markers in Path(fast.output).read_bytes()


def test_fast_otio_conform_keeps_other_references_and_falls_back_for_old_schemas(session, files, tmp_path,
                                                                                 monkeypatch):
    backlot.create_project(session, "film", fps="24")
    timeline = build_timeline()
    clip = next(c for c in timeline.find_clips() if c.name == "sq010_sh0010_v3.mov")
    clip.set_media_references({"DEFAULT_MEDIA": otio.schema.ExternalReference("file:///proxy.mov"),
                               "high": otio.schema.ExternalReference("file:///high.mov")}, "high")
    current, old = tmp_path / "current.otio", tmp_path / "old.otio"
    otio.adapters.write_to_file(timeline, str(current))
    otio.adapters.write_to_file(timeline, str(old), target_schema_versions={"Clip": 1})  # OTIO upgrades it on read
    outputs = {}
    for source, expect_fast in ((current, True), (old, False)):
        import_cut(session, "film", source, create_shots=True)
        if source is current:
            publish_frames(session, files, "sq010_sh0010", 993, 1060, status="approved")
        fast_taken, fast, slow = _conform_both_ways(session, tmp_path, monkeypatch, source.stem)
        assert fast_taken == expect_fast and fast.relinked == slow.relinked == 1
        assert _read_back(fast.output) == _read_back(slow.output)
        outputs[source.stem] = fast.output
    written = otio.adapters.read_from_file(outputs["current"])
    relinked = next(c for c in written.find_clips() if c.name == clip.name)
    assert relinked.media_references()["DEFAULT_MEDIA"].target_url == "file:///proxy.mov"
    assert relinked.metadata["backlot"]["original_media"] == "file:///high.mov"


@pytest.mark.parametrize("odd, fast_expected", [("text", True), ("nan", False), ("infinity", False)])
def test_fast_otio_conform_keeps_non_ascii_text_and_falls_back_for_non_finite_numbers(session, files, tmp_path,
                                                                                       monkeypatch, odd,
                                                                                       fast_expected):
    """The fast path writes UTF-8 as read; NaN and Infinity (which OTIO writes, and JSON lacks) go through OTIO."""
    backlot.create_project(session, "film", fps="24")
    timeline = build_timeline()
    timeline.tracks[0].name = "V1 — été"
    clip = next(c for c in timeline.find_clips() if c.name == "sq010_sh0010_v3.mov")
    clip.metadata["note"] = {"text": "plan d'été 🎬 \u2028", "nan": float("nan"), "infinity": float("inf")}[odd]
    source = tmp_path / "reel1.otio"
    otio.adapters.write_to_file(timeline, str(source))
    import_cut(session, "film", source, create_shots=True)
    publish_frames(session, files, "sq010_sh0010", 993, 1060, status="approved")
    fast_taken, fast, slow = _conform_both_ways(session, tmp_path, monkeypatch, odd)
    assert fast_taken == fast_expected and fast.relinked == slow.relinked == 1
    assert _read_back(fast.output) == _read_back(slow.output)
    written = otio.adapters.read_from_file(fast.output)
    assert written.tracks[0].name == "V1 — été"
    relinked = next(c for c in written.find_clips() if c.name == clip.name)
    assert relinked.metadata["backlot"]["version"].endswith("@1")
    if odd == "text":
        assert relinked.metadata["note"] == "plan d'été 🎬 \u2028"


@pytest.mark.parametrize("where", ["clip", "gap", "track", "timeline"])
def test_fast_otio_conform_falls_back_for_fields_this_otio_does_not_write(session, files, tmp_path, monkeypatch,
                                                                          where):
    """A field OTIO keeps but would not write itself (another OTIO's, a tool's) sends the conform through OTIO."""
    backlot.create_project(session, "film", fps="24")
    tree = json.loads(build_timeline().to_json_string())
    v1 = tree["tracks"]["children"][0]
    {"clip": v1["children"][0], "gap": v1["children"][3], "track": v1, "timeline": tree}[where]["studio_note"] = "x"
    source = tmp_path / "reel1.otio"
    source.write_text(json.dumps(tree))
    import_cut(session, "film", source, create_shots=True)
    publish_frames(session, files, "sq010_sh0010", 993, 1060, status="approved")
    fast_taken, fast, slow = _conform_both_ways(session, tmp_path, monkeypatch, where)
    assert not fast_taken and fast.relinked == slow.relinked == 1
    assert _read_back(fast.output) == _read_back(slow.output)
    assert '"studio_note": "x"' in _read_back(fast.output)


def test_conform_reads_the_frames_of_a_version_without_frame_range_from_its_files(session, files, tmp_path,
                                                                                   conformed_project):
    def publish(shot, names):
        paths = [files(f"{shot}/{name}", f"{shot}:{name}") for name in names]
        return backlot.publish_version(session, "film", f"shots/{shot}/main", paths, names=names,
                                        kind="shot_render", shot=shot, status="approved")

    # No frame_range: the image files say which shot frames the version holds (993..1060).
    frames = publish("sq010_sh0010", [f"frames/frame.{n:04d}.png" for n in range(993, 1061)] + ["notes.txt"])
    movie_only = publish("sq010_sh0020", ["preview.mp4"])  # a movie is placed by frame_range only
    result = conform_cut(session, "film", tmp_path / "conformed.otio")
    by_clip = {c.clip: c for c in result.clips}
    assert (by_clip["sq010_sh0010_v3.mov"].status, by_clip["sq010_sh0010_v3.mov"].version) == ("relinked", frames.ref)
    assert (by_clip["sq010_sh0020_v1.mov"].status, by_clip["sq010_sh0020_v1.mov"].version) == ("no_media",
                                                                                             movie_only.ref)
    written = {c.name: c for c in otio.adapters.read_from_file(result.output).find_clips()}
    reference = written["sq010_sh0010_v3.mov"].media_reference
    assert (reference.start_frame, reference.available_range.duration.value) == (993, 68)
