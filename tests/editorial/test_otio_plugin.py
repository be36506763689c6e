"""The `backlot` OTIO media linker, found through the entry point, used by OTIO itself."""

from __future__ import annotations

import subprocess
import sys

import opentimelineio as otio
import pytest

import backlot
from backlot.editorial import import_cut
from backlot.errors import InvalidInputError


def publish_frames(project, shot, first, last, files):
    with backlot.session() as s:
        paths = [files(f"{shot}/frame.{n:04d}.png", f"{shot}:{n}") for n in range(first, last + 1)]
        return backlot.publish_version(s, project, f"shots/{shot}/main", paths, kind="shot_render", shot=shot,
                                        names=[f"frames/{p.name}" for p in paths], status="approved",
                                        metadata={"frame_range": [first, last]})


@pytest.fixture
def linked_project(db_url, samples, files):
    with backlot.session() as s:
        backlot.create_project(s, "film", fps="24")
        import_cut(s, "film", samples / "079_HA_V05.edl", create_shots=True)
    return publish_frames("film", "079_HA_0010", 993, 1104, files)


def test_the_linker_is_registered_through_the_entry_point():
    assert "backlot" in otio.media_linker.available_media_linker_names()
    linker = otio.plugins.ActiveManifest().from_name("backlot", kind_list="media_linkers")
    assert linker.module_abs_path().endswith("integrations/otio/media_linker.py")


def test_otio_relinks_a_timeline_through_backlot(linked_project, samples):
    version = linked_project
    timeline = otio.adapters.read_from_file(str(samples / "079_HA_V05.edl"), rate=24, media_linker_name="backlot",
                                            media_linker_argument_map={"project": "film", "refresh": True})
    clips = list(timeline.find_clips())
    first = clips[0]
    assert isinstance(first.media_reference, otio.schema.ImageSequenceReference)
    assert version.content_hash in first.media_reference.target_url_base
    assert first.source_range.start_time.value == 1001 and first.source_range.duration.value == 96
    assert first.metadata["backlot"]["version"] == version.ref and first.metadata["backlot"]["shot_in"] == 1001
    assert all(isinstance(c.media_reference, otio.schema.MissingReference) for c in clips[1:]), "no versions yet"
    # Linking an already linked timeline again changes nothing.
    again = otio.adapters.read_from_string(otio.adapters.write_to_string(timeline), "otio_json",
                                           media_linker_name="backlot", media_linker_argument_map={"project": "film"})
    assert list(again.find_clips())[0].source_range == first.source_range
    with pytest.raises(InvalidInputError, match="needs a project"):
        otio.adapters.read_from_file(str(samples / "079_HA_V05.edl"), rate=24, media_linker_name="backlot")


@pytest.mark.slow
def test_otioconvert_uses_the_linker(linked_project, samples, tmp_path):
    out = tmp_path / "linked.otio"
    run = subprocess.run([sys.executable, "-m", "opentimelineio.console.otioconvert", "-i",
                          str(samples / "079_HA_V05.edl"), "-o", str(out), "-a", "rate=24", "-m", "backlot",
                          "-M", "project=film"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    first = list(otio.adapters.read_from_file(str(out)).find_clips())[0]
    assert first.metadata["backlot"]["version"] == linked_project.ref
