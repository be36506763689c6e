"""Generation on the tiny model: real diffusers/peft code paths on the CPU."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

import backlot
from backlot import generation as gen
from backlot.db.models import Version
from backlot.errors import InvalidInputError
from backlot.generation.loading import clear_cache
from backlot.generation.models import version_folder
from tests.generation.conftest import make_art

FAST = gen.TrainSettings(steps=25, lr=1e-3, seed=0)


def tree_hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def frame_bytes(version) -> list[bytes]:
    folder = version_folder(version)
    return [(folder / f.path).read_bytes() for f in version.files if f.path.startswith("frames/")]


def train(s, production, name="adapters/mara", settings=FAST, art=None):
    return gen.train_adapter(s, "film", name, [art or production["art"]], base_model=production["base"],
                             settings=settings)


def render(s, shot, adapters=(), **kwargs):
    settings = gen.RenderSettings(prompt=kwargs.pop("prompt", "mara walks"), steps=4, seed=kwargs.pop("seed", 0))
    return gen.render_shot(s, "film", shot, settings, base_model="film/models/tiny@approved",
                           adapters=[gen.AdapterUse(ref, w) for ref, w in adapters], **kwargs)


def test_tiny_model_same_seed_same_bytes(tiny_folder, tmp_path):
    again = gen.build_tiny_pipeline(tmp_path / "again", seed=0)
    other = gen.build_tiny_pipeline(tmp_path / "other", seed=1)
    assert tree_hashes(again) == tree_hashes(tiny_folder)
    assert tree_hashes(other) != tree_hashes(tiny_folder)
    assert (tiny_folder / "model_index.json").exists() and (tiny_folder / "unet").is_dir()


def test_register_copies_or_references(production, tiny_folder):
    with backlot.session() as s:
        copied = backlot.get_version(s, production["base"])
        referenced = gen.register_model(s, "film", "models/tiny_ref", tiny_folder, copy=False)
    assert copied.content_hash == referenced.content_hash
    assert version_folder(copied) != tiny_folder and version_folder(referenced) == tiny_folder
    assert {f.path for f in copied.files} >= {"model_index.json", "unet/config.json"}
    assert copied.metadata["pipeline_class"] == "StableDiffusionPipeline"


def test_register_refuses_what_is_not_a_pipeline(production, tmp_path):
    (tmp_path / "notamodel").mkdir()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "X"]}')
    with backlot.session() as s:
        with pytest.raises(InvalidInputError, match="no model_index.json"):
            gen.register_model(s, "film", "m", tmp_path / "notamodel")
        with pytest.raises(InvalidInputError, match="components unet"):
            gen.register_model(s, "film", "m", broken)
        with pytest.raises(InvalidInputError, match="not a folder"):
            gen.register_model(s, "film", "m", tmp_path / "missing")


def test_training_lowers_the_loss_records_everything_and_is_exact(production):
    with backlot.session() as s:
        adapter = train(s, production)
        again = train(s, production, "adapters/mara_again")
    recipe = adapter.recipe
    assert recipe["eval_loss_after"] < recipe["eval_loss_before"]
    assert len(recipe["losses"]) == FAST.steps and recipe["rank"] == FAST.rank and recipe["seed"] == FAST.seed
    assert recipe["versions"]["torch"] and recipe["device_class"].startswith("cpu/")
    assert {(i.role, i.ref) for i in adapter.inputs} == {("training_data", production["art"]),
                                                         ("base_model", production["base"])}
    assert adapter.files[0].path == "pytorch_lora_weights.safetensors"
    assert adapter.content_hash == again.content_hash, "same recipe and data, same bytes"


def test_adapters_change_the_output_and_hot_swap_equals_fresh_load(production):
    with backlot.session() as s:
        a = train(s, production)
        b = train(s, production, "adapters/other", gen.TrainSettings(steps=25, lr=5e-3, seed=9))
        plain = render(s, "sh010", continuity=False)
        with_a = render(s, "sh010", [(a.ref, 1.0)], continuity=False)
        render(s, "sh010", [(b.ref, 1.0)], continuity=False)          # swap to b ...
        swapped_back = render(s, "sh010", [(a.ref, 1.0)], continuity=False)  # ... and back to a
        clear_cache()
        fresh = render(s, "sh010", [(a.ref, 1.0)], continuity=False)
    assert frame_bytes(with_a) != frame_bytes(plain)
    assert frame_bytes(swapped_back) == frame_bytes(with_a) == frame_bytes(fresh)


def test_frames_follow_the_cut_and_outputs_are_complete(production):
    with backlot.session() as s:
        version = render(s, "sh010")
        forced = render(s, "sh020", frames=2)
    names = [f.path for f in version.files]
    assert names == ["frames/frame.1000.png", "frames/frame.1001.png", "frames/frame.1002.png",
                     "frames/frame.1003.png", "frames/frame.1004.png", "preview.mp4", "thumbnail.png"]
    assert version.metadata["frame_range"] == [1000, 1004] and version.recipe["frame_count"] == 5
    assert forced.recipe["frame_count"] == 2
    import av

    with av.open(str(version_folder(version) / "preview.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 5


def test_continuity_is_recorded_and_used(production):
    with backlot.session() as s:
        first = render(s, "sh010")
        second = render(s, "sh020", prompt="mara runs")
        alone = render(s, "sh020", prompt="mara runs", continuity=False)
    assert ("continuity", first.ref) in {(i.role, i.ref) for i in second.inputs}
    assert second.recipe["continuity"] == first.ref and alone.recipe["continuity"] is None
    assert frame_bytes(second)[0] != frame_bytes(alone)[0]


def test_verify_passes_and_names_an_altered_frame(production):
    with backlot.session() as s:
        first = render(s, "sh010")
        second = render(s, "sh020", [(train(s, production).ref, 0.8)])
    with backlot.session() as s:
        for version in (first, second):
            assert gen.verify_version(s, version.ref).identical
    frame = version_folder(second) / "frames/frame.1002.png"
    frame.chmod(0o644)
    frame.write_bytes(frame.read_bytes()[:-1] + b"\x00")
    with backlot.session() as s:
        result = gen.verify_version(s, second.ref)
    assert not result.identical and result.first_difference == "frames/frame.1002.png"
    assert "altered" in result.detail


def test_rerender_uses_current_upstream_and_records_regenerated_from(production, tmp_path):
    with backlot.session() as s:
        adapter1 = train(s, production)
        backlot.set_status(s, adapter1.ref, "approved")
        shot = render(s, "sh010", [(adapter1.ref, 1.0)])
        art2 = backlot.publish_version(s, "film", "characters/mara", [make_art(tmp_path / "m2.png", 2)],
                                        status="approved")
        adapter2 = train(s, production, art=art2.ref)
        backlot.set_status(s, adapter2.ref, "approved")
        assert shot.ref in {x.ref for x in backlot.find_stale_versions(s, "film")}
        redone = gen.rerender_version(s, shot.ref)
        stale_now = {x.ref for x in backlot.find_stale_versions(s, "film")}
    inputs = {(i.role, i.ref) for i in redone.inputs}
    assert ("adapter", adapter2.ref) in inputs and ("regenerated_from", shot.ref) in inputs
    assert redone.recipe["seed"] == shot.recipe["seed"] and redone.number == 2
    assert redone.ref not in stale_now


def test_bad_inputs_publish_nothing(production, tmp_path):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"this is not a png")
    with backlot.session() as s:
        bad_art = backlot.publish_version(s, "film", "characters/junk", [junk], kind="concept_art")
        other_base = gen.build_and_register_tiny(s, "film", "models/other", seed=5)
        foreign = gen.train_adapter(s, "film", "adapters/foreign", [production["art"]], base_model=other_base.ref,
                                    settings=FAST)
    with backlot.session() as s:
        before = s.scalar(select(func.count()).select_from(Version))
    cases = [
        (lambda s: train(s, production, art=bad_art.ref), "not a readable image"),
        (lambda s: render(s, "sh010", [(foreign.ref, 1.0)]), "was trained on film/models/other@1"),
        (lambda s: render(s, "sh010", frames=0), "at least one frame"),
        (lambda s: render(s, "sh010", prompt="  "), "needs a --prompt"),
        (lambda s: render(s, "sh010", [(production["art"], 1.0)]), "not an adapter"),
        (lambda s: gen.train_adapter(s, "film", "a", [], base_model=production["base"]), "at least one"),
        (lambda s: gen.train_adapter(s, "film", "a", [production["art"]], base_model=production["base"],
                                     settings=gen.TrainSettings(resolution=60)), "multiple of 8"),
    ]
    for call, message in cases:
        with pytest.raises(InvalidInputError, match=message):
            with backlot.session() as s:
                call(s)
    with backlot.session() as s:
        assert s.scalar(select(func.count()).select_from(Version)) == before


def test_mixed_sizes_are_resized_and_long_prompts_truncated_with_a_record(production, tmp_path):
    with backlot.session() as s:
        wide = backlot.publish_version(s, "film", "characters/wide", [make_art(tmp_path / "w.png", 3, (96, 48))],
                                        kind="concept_art")
        adapter = gen.train_adapter(s, "film", "adapters/mixed", [production["art"], wide.ref],
                                    base_model=production["base"], settings=FAST)
        with pytest.warns(UserWarning, match="truncated"):
            long = render(s, "sh010", prompt="mara " * 200, continuity=False, frames=1)
    assert adapter.recipe["data_corrections"] == ["w.png: resized 96x48 -> 64x64"]
    assert long.recipe["prompt_truncated"] is True


def test_the_tracker_and_cli_do_not_load_torch():
    code = "import sys, pipeline, backlot.services.cli.app; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ))


@pytest.mark.skipif("not __import__('torch').cuda.is_available()", reason="needs a CUDA GPU (none on this machine)")
def test_cuda_renders_in_reduced_precision(production, monkeypatch):
    monkeypatch.setenv("BACKLOT_DEVICE", "cuda")
    clear_cache()
    with backlot.session() as s:
        version = render(s, "sh010", continuity=False)
    assert version.recipe["device_class"].startswith("cuda/") and version.recipe["device_class"].endswith("16")


def test_a_tiny_video_base_renders_with_continuity_and_verifies(production, tmp_path):
    with backlot.session() as s:
        video = gen.build_and_register_tiny(s, "film", "models/tiny_video", kind="animatediff")
        settings = gen.RenderSettings(prompt="mara walks", steps=2, seed=3)
        first = gen.render_shot(s, "film", "sh010", settings, base_model=video.ref, output="video")
        second = gen.render_shot(s, "film", "sh020", settings, base_model=video.ref, output="video")
    assert video.metadata["pipeline_class"] == "AnimateDiffPipeline" and video.metadata["family"] == "animatediff"
    assert first.recipe["pipeline_class"] == "AnimateDiffPipeline"
    assert first.recipe["img2img_class"] == "AnimateDiffVideoToVideoPipeline"
    assert len([f for f in first.files if f.path.startswith("frames/")]) == 5
    assert ("continuity", first.ref) in {(i.role, i.ref) for i in second.inputs}
    with backlot.session() as s:
        assert gen.verify_version(s, second.ref).identical
