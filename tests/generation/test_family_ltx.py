"""The LTX-Video family on its tiny stand-in: LTXConditionPipeline and peft on the CPU.

The stand-in makes 5-frame clips, so a 5-frame shot that continues from its neighbour is
two clips, each conditioned on the frame before it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import backlot
from backlot import generation as gen
from backlot.errors import InvalidInputError
from backlot.generation.loading import _CACHE, clear_cache
from tests.generation.conftest import make_art
from tests.generation.test_families import frames_of, tiny_models  # noqa: F401 (tiny_models: a fixture)
from tests.generation.test_family_wan import versions_count, wan_folders  # noqa: F401 (wan_folders: a fixture)

LTX = "film/models/ltx@approved"
TRAIN = gen.TrainSettings(steps=5, lr=1e-3, seed=0)


@pytest.fixture
def ltx_folder(tiny_models) -> Path:
    return tiny_models("ltx")


@pytest.fixture
def ltx_film(db_url, ltx_folder, tmp_path):
    clear_cache()
    with backlot.session() as s:
        backlot.create_project(s, "film")
        base = gen.register_model(s, "film", "models/ltx", ltx_folder)
        art = backlot.publish_version(s, "film", "characters/mara", [make_art(tmp_path / "mara.png", 1)],
                                       kind="concept_art", status="approved")
        for code in ("sh010", "sh020"):
            backlot.create_shot(s, "film", code, sequence="sq010", frames=3, handles=1)
    return {"base": base, "art": art.ref}


def render(s, shot, adapters=(), **kwargs):
    settings = gen.RenderSettings(prompt=kwargs.pop("prompt", "mara walks"), steps=3, seed=kwargs.pop("seed", 0))
    return gen.render_shot(s, "film", shot, settings, base_model=LTX,
                           adapters=[gen.AdapterUse(ref, w) for ref, w in adapters], **kwargs)


def train(s, film, name="adapters/mara", settings=TRAIN, caption="mara, red coat"):
    return gen.train_adapter(s, "film", name, [film["art"]], base_model=LTX, captions=[caption], settings=settings)


def test_ltx_trains_renders_with_conditioning_frames_and_verifies(ltx_film):
    with backlot.session() as s:
        adapter = train(s, ltx_film)
        first = render(s, "sh010", [(adapter.ref, 1.0)])
        second = render(s, "sh020", [(adapter.ref, 1.0)], prompt="mara runs")
    assert ltx_film["base"].metadata["family"] == "ltx"
    assert adapter.recipe["family"] == "ltx" and len(adapter.recipe["losses"]) == 5
    assert ("continuity", first.ref) in {(i.role, i.ref) for i in second.inputs}
    last = sorted((f for f in first.files if f.path.startswith("frames/")), key=lambda f: f.path)[-1]
    assert second.recipe["continuity_frame"] == {"path": last.path, "sha256": last.sha256}
    assert [(c["from"], c["keep"]) for c in second.recipe["clips"]] == [("continuity", [1, 5]),
                                                                        ("previous clip", [1, 2])]
    assert second.recipe["img2img_class"] == "LTXConditionPipeline" and len(frames_of(second)) == 5
    with backlot.session() as s:
        for version in (first, second):
            result = gen.verify_version(s, version.ref)  # a fresh Python process
            assert result.identical, result.detail
        redone = gen.rerender_version(s, second.ref)
    assert frames_of(redone) == frames_of(second)


def test_ltx_adapters_hot_swap_and_a_long_shot(ltx_film):
    with backlot.session() as s:
        a = train(s, ltx_film)
        b = train(s, ltx_film, "adapters/other", gen.TrainSettings(steps=5, lr=5e-3, seed=9), caption="a lamp")
        with_a = render(s, "sh010", [(a.ref, 1.0)], continuity=False)
        loaded = next(iter(_CACHE.values()))
        with_b = render(s, "sh010", [(b.ref, 1.0)], continuity=False)
        back_to_a = render(s, "sh010", [(a.ref, 1.0)], continuity=False)
        assert list(_CACHE.values()) == [loaded] and len(loaded.adapters) == 2
        long = render(s, "sh010", [(a.ref, 1.0)], continuity=False, frames=11)
    assert frames_of(with_a) != frames_of(with_b) and frames_of(back_to_a) == frames_of(with_a)
    assert [c["keep"] for c in long.recipe["clips"]] == [[0, 5], [1, 5], [1, 3]]
    assert frames_of(long)[:5] == frames_of(with_a)


def test_ltx_bad_inputs(ltx_film, ltx_folder, wan_folders, tmp_path):  # noqa: F811
    with backlot.session() as s:
        wan = gen.register_model(s, "film", "models/wan", wan_folders["ti2v"])
        wan_adapter = gen.train_adapter(s, "film", "adapters/wan", [ltx_film["art"]], base_model=wan.ref,
                                        settings=gen.TrainSettings(steps=1, seed=0))
    no_transformer = shutil.copytree(ltx_folder, tmp_path / "no_transformer")
    index = json.loads((no_transformer / "model_index.json").read_text())
    index["transformer"] = [None, None]
    (no_transformer / "model_index.json").write_text(json.dumps(index))
    odd_clip = shutil.copytree(ltx_folder, tmp_path / "odd_clip")
    (odd_clip / "backlot_video.json").write_text('{"clip_frames": 7}')
    before = versions_count()
    cases = [
        (lambda s: render(s, "sh010", [(wan_adapter.ref, 1.0)]), "only works on the family it was trained on"),
        (lambda s: gen.register_model(s, "film", "models/x", no_transformer), "missing: transformer"),
        (lambda s: gen.register_model(s, "film", "models/x", odd_clip), "clip_frames 7 .* 4k\\+1 .* use 5 or 9"),
        (lambda s: render(s, "sh010", frames=0), "at least one frame"),
    ]
    for call, message in cases:
        with pytest.raises(InvalidInputError, match=message):
            with backlot.session() as s:
                call(s)
    assert versions_count() == before
