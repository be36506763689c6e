"""The Wan family on its tiny stand-ins: real diffusers Wan pipelines and peft on the CPU.

The default stand-in is TI2V-shaped (one transformer, text- and image-to-video), with
5-frame clips, so a 5-frame shot that continues from its neighbour already takes two clips.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

import backlot
from backlot import generation as gen
from backlot.db.models import Version
from backlot.errors import InvalidInputError
from backlot.generation.families import get_family, wan
from backlot.generation.loading import _CACHE, clear_cache
from tests.generation.conftest import make_art
from tests.generation.test_families import frames_of, tiny_models  # noqa: F401 (tiny_models: a fixture)

WAN = "film/models/wan@approved"
TRAIN = gen.TrainSettings(steps=5, lr=1e-3, seed=0)


@pytest.fixture(scope="session")
def wan_folders(tmp_path_factory, tiny_models) -> dict[str, Path]:
    """Every tiny Wan variant: "ti2v" is the family's stand-in (tiny_models), the others are
    shaped like Wan 2.1 I2V / T2V and Wan 2.2 A14B (two experts)."""
    root = tmp_path_factory.mktemp("wan")
    return {v: tiny_models("wan") if v == "ti2v" else get_family("wan").build_tiny(root / v, seed=0, variant=v)
            for v in wan.TINY_VARIANTS}


@pytest.fixture
def wan_film(db_url, wan_folders, tmp_path):
    """A project with the tiny Wan (TI2V) base, approved concept art and three shots of 5 frames."""
    clear_cache()
    with backlot.session() as s:
        backlot.create_project(s, "film")
        base = gen.register_model(s, "film", "models/wan", wan_folders["ti2v"])
        art = backlot.publish_version(s, "film", "characters/mara", [make_art(tmp_path / "mara.png", 1)],
                                       kind="concept_art", status="approved")
        for code in ("sh010", "sh020", "sh030"):
            backlot.create_shot(s, "film", code, sequence="sq010", frames=3, handles=1)
    return {"base": base, "art": art.ref, "tmp": tmp_path}


def render(s, shot, adapters=(), base=WAN, **kwargs):
    settings = gen.RenderSettings(prompt=kwargs.pop("prompt", "mara walks"), steps=3, seed=kwargs.pop("seed", 0))
    return gen.render_shot(s, "film", shot, settings, base_model=base,
                           adapters=[gen.AdapterUse(ref, w) for ref, w in adapters], **kwargs)


def train(s, film, name="adapters/mara", settings=TRAIN, caption="mara, red coat"):
    return gen.train_adapter(s, "film", name, [film["art"]], base_model=WAN, captions=[caption], settings=settings)


def versions_count() -> int:
    with backlot.session() as s:
        return s.scalar(select(func.count()).select_from(Version))


def test_tiny_wan_is_seeded_and_registers_as_wan(wan_film, wan_folders, tmp_path):
    again = get_family("wan").build_tiny(tmp_path / "again", seed=0)
    other = get_family("wan").build_tiny(tmp_path / "other", seed=1)
    hashes = lambda folder: {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
                             if p.is_file()}
    assert hashes(again) == hashes(wan_folders["ti2v"]) != hashes(other)
    assert wan_film["base"].metadata["family"] == "wan"
    index = json.loads((wan_folders["ti2v"] / "model_index.json").read_text())
    assert index["_class_name"] == "WanPipeline" and index["expand_timesteps"] is True


def test_train_render_two_shots_with_continuity_and_verify_in_a_fresh_process(wan_film):
    with backlot.session() as s:
        adapter = train(s, wan_film)
        first = render(s, "sh010", [(adapter.ref, 1.0)])
        second = render(s, "sh020", [(adapter.ref, 1.0)], prompt="mara runs")
        alone = render(s, "sh020", [(adapter.ref, 1.0)], prompt="mara runs", continuity=False)
    recipe = adapter.recipe
    assert adapter.metadata["family"] == recipe["family"] == "wan" and recipe["objective"] == "flow_matching"
    assert len(recipe["losses"]) == 5 and recipe["flow_matching"]["weighting_scheme"] == "logit_normal"
    assert recipe["target_modules"] == ["to_q", "to_k", "to_v", "to_out.0"]

    assert ("continuity", first.ref) in {(i.role, i.ref) for i in second.inputs}
    last = sorted((f for f in first.files if f.path.startswith("frames/")), key=lambda f: f.path)[-1]
    assert second.recipe["continuity_frame"] == {"path": last.path, "sha256": last.sha256}
    clips = second.recipe["clips"]
    assert [c["from"] for c in clips] == ["continuity", "previous clip"]  # 4 frames + 1 frame = the 5 of the cut
    assert [c["keep"] for c in clips] == [[1, 5], [1, 2]] and [c["seed"] for c in clips] == [0, 1]
    assert first.recipe["clips"] == [{"index": 0, "from": "prompt", "seed": 0, "num_frames": 5, "keep": [0, 5]}]
    assert second.recipe["native_fps"] == 24 and "fps" in second.recipe["fps_mapping"]
    assert len(frames_of(second)) == second.recipe["frame_count"] == 5
    assert frames_of(second) != frames_of(alone)  # the previous shot's last frame changed the shot

    with backlot.session() as s:
        for version in (first, second):
            result = gen.verify_version(s, version.ref)  # a fresh Python process
            assert result.identical, result.detail
        redone = gen.rerender_version(s, second.ref)
    assert ("regenerated_from", second.ref) in {(i.role, i.ref) for i in redone.inputs}
    assert frames_of(redone) == frames_of(second)  # same upstream, same recipe: same bytes


def test_adapters_hot_swap_without_a_reload(wan_film):
    with backlot.session() as s:
        a = train(s, wan_film)
        b = train(s, wan_film, "adapters/other", gen.TrainSettings(steps=5, lr=5e-3, seed=9), caption="a lamp")
        with_a = render(s, "sh010", [(a.ref, 1.0)], continuity=False)
        loaded = next(iter(_CACHE.values()))
        with_b = render(s, "sh010", [(b.ref, 1.0)], continuity=False)
        back_to_a = render(s, "sh010", [(a.ref, 1.0)], continuity=False)
        assert list(_CACHE.values()) == [loaded] and len(loaded.adapters) == 2  # one load, both adapters in it
        clear_cache()
        fresh_b = render(s, "sh010", [(b.ref, 1.0)], continuity=False)
    assert frames_of(with_a) != frames_of(with_b)
    assert frames_of(back_to_a) == frames_of(with_a) and frames_of(fresh_b) == frames_of(with_b)


def test_a_shot_longer_than_one_clip_is_met_exactly(wan_film):
    with backlot.session() as s:
        long = render(s, "sh030", frames=11, continuity=False, seed=4)
        short = render(s, "sh030", frames=5, continuity=False, seed=4)
    clips = long.recipe["clips"]
    assert [(c["from"], c["seed"], c["keep"]) for c in clips] == [
        ("prompt", 4, [0, 5]), ("previous clip", 5, [1, 5]), ("previous clip", 6, [1, 3])]
    assert len(frames_of(long)) == 11 and long.metadata["frame_range"] == [1000, 1010]
    assert frames_of(long)[:5] == frames_of(short)  # the first clip is the same clip


def test_other_wan_folders_render_through_their_own_paths(wan_film, wan_folders):
    with backlot.session() as s:
        i2v = gen.register_model(s, "film", "models/wan_i2v", wan_folders["i2v"])
        t2v = gen.register_model(s, "film", "models/wan_t2v", wan_folders["t2v"])
    before = versions_count()
    with pytest.raises(InvalidInputError, match="image-to-video only"):
        with backlot.session() as s:
            render(s, "sh010", base=i2v.ref)
    assert versions_count() == before
    with backlot.session() as s:
        first = render(s, "sh010", base=t2v.ref, frames=7)  # text-to-video, then video-to-video for clip 2
        second = render(s, "sh020", base=i2v.ref)  # Wan 2.1-style I2V with a CLIP image encoder
    assert first.recipe["img2img_class"] == "WanVideoToVideoPipeline" and first.recipe["strengths_used"]
    assert second.recipe["img2img_class"] == "WanImageToVideoPipeline" and second.recipe["continuity"] == first.ref
    assert len(frames_of(first)) == 7 and len(frames_of(second)) == 5


def test_two_expert_wan_folders(wan_film, wan_folders):
    with backlot.session() as s:
        t2v = gen.register_model(s, "film", "models/wan_t2v_experts", wan_folders["t2v_experts"])
        i2v = gen.register_model(s, "film", "models/wan_i2v_experts", wan_folders["i2v_experts"])
        first = render(s, "sh010", base=t2v.ref, continuity=False)  # one clip: the experts switch at 0.875
        second = render(s, "sh020", base=i2v.ref)  # image-to-video from sh010's last frame, two clips
    assert first.recipe["boundary_ratio"] == 0.875 and second.recipe["boundary_ratio"] == 0.9
    assert [c["from"] for c in second.recipe["clips"]] == ["continuity", "previous clip"]
    assert second.recipe["native_fps"] == 16 and len(frames_of(second)) == 5
    before = versions_count()
    cases = [
        (lambda s: render(s, "sh010", base=t2v.ref, continuity=False, frames=7), "cannot continue from a frame"),
        (lambda s: gen.train_adapter(s, "film", "adapters/x", [wan_film["art"]], base_model=i2v.ref,
                                     settings=TRAIN), "image-to-video-only"),
        (lambda s: gen.train_adapter(s, "film", "adapters/x", [wan_film["art"]], base_model=t2v.ref,
                                     settings=TRAIN), "two experts"),
    ]
    for call, message in cases:
        with pytest.raises(InvalidInputError, match=message):
            with backlot.session() as s:
                call(s)
    assert versions_count() == before


def test_bad_inputs_say_what_is_wrong_and_publish_nothing(wan_film, wan_folders, tiny_folder, tmp_path):
    with backlot.session() as s:
        sd = gen.register_model(s, "film", "models/sd", tiny_folder)
        sd_adapter = gen.train_adapter(s, "film", "adapters/sd", [wan_film["art"]], base_model=sd.ref,
                                       settings=gen.TrainSettings(steps=2, seed=0))
    no_vae = shutil.copytree(wan_folders["ti2v"], tmp_path / "no_vae")
    index = json.loads((no_vae / "model_index.json").read_text())
    del index["vae"]
    (no_vae / "model_index.json").write_text(json.dumps(index))
    shutil.rmtree(no_vae / "vae")
    no_encoder = shutil.copytree(wan_folders["i2v"], tmp_path / "no_encoder")
    index = json.loads((no_encoder / "model_index.json").read_text())
    index["image_encoder"] = [None, None]
    (no_encoder / "model_index.json").write_text(json.dumps(index))
    shutil.rmtree(no_encoder / "image_encoder")
    odd_clip = shutil.copytree(wan_folders["ti2v"], tmp_path / "odd_clip")
    (odd_clip / "backlot_video.json").write_text('{"clip_frames": 8, "native_fps": 24}')
    before = versions_count()
    cases = [
        (lambda s: render(s, "sh010", [(sd_adapter.ref, 1.0)]), "only works on the family it was trained on"),
        (lambda s: gen.register_model(s, "film", "models/x", no_vae), "missing: vae"),
        (lambda s: gen.register_model(s, "film", "models/x", no_encoder), "missing: image_encoder"),
        (lambda s: gen.register_model(s, "film", "models/x", odd_clip), "clip_frames 8 .* 4k\\+1 .* use 5 or 9"),
        (lambda s: render(s, "sh010", frames=0), "at least one frame"),
        (lambda s: gen.render_shot(s, "film", "sh010", gen.RenderSettings(prompt="x", width=72, height=64),
                                   base_model=WAN), "multiples of 16"),
        (lambda s: train(s, wan_film, settings=gen.TrainSettings(steps=1, resolution=72)), "multiples of 16"),
    ]
    for call, message in cases:
        with pytest.raises(InvalidInputError, match=message):
            with backlot.session() as s:
                call(s)
    assert versions_count() == before


def test_cli_builds_and_renders_the_wan_stand_in(run, wan_film):
    version = json.loads(run("model", "tiny", "film", "--family", "wan", "--json").stdout)
    assert version["ref"] == "film/models/tiny_wan@1" and version["metadata"]["family"] == "wan"
    rendered = json.loads(run("render", "film", "sh010", "--prompt", "mara walks", "--base", version["ref"],
                              "--steps", "2", "--frames", "6", "--json").stdout)
    with backlot.session() as s:
        shot = backlot.get_version(s, rendered["ref"])
    assert [c["keep"] for c in shot.recipe["clips"]] == [[0, 5], [1, 2]] and len(frames_of(shot)) == 6
