"""Model families on their tiny stand-ins: register, train, render with continuity, verify in a
fresh process, rerender, hot-swap adapters; and what each family refuses.

Real diffusers/peft code paths on the CPU (sd, animatediff, sdxl, flux here; wan and ltx in
their own files). Each family's tiny model is built once per run.
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
from backlot.generation import loading
from backlot.generation.models import version_folder
from tests.generation.conftest import make_art

FAMILIES = ("sd", "animatediff", "sdxl", "flux")
OBJECTIVES = {"sd": "epsilon", "animatediff": "epsilon", "sdxl": "epsilon", "flux": "flow_matching"}
DENOISERS = {"sd": "unet", "animatediff": "unet", "sdxl": "unet", "flux": "transformer"}


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """family -> its tiny stand-in folder, built on first use and kept for the run."""
    built: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in built:
            built[family] = gen.build_tiny_pipeline(tmp_path_factory.mktemp(family) / "tiny", seed=0, family=family)
        return built[family]

    return get


def frames_of(version) -> list[bytes]:
    folder = version_folder(version)
    return [(folder / f.path).read_bytes() for f in sorted(version.files, key=lambda f: f.path)
            if f.path.startswith("frames/")]


def settings(prompt: str = "mara walks") -> gen.RenderSettings:
    return gen.RenderSettings(prompt=prompt, steps=2, seed=0)


@pytest.fixture
def film(db_url, tmp_path):
    with backlot.session() as s:
        backlot.create_project(s, "film")
        art = backlot.publish_version(s, "film", "characters/mara", [make_art(tmp_path / "mara.png", 1)],
                                       kind="concept_art", status="approved")
        for code in ("sh010", "sh020"):
            backlot.create_shot(s, "film", code, sequence="sq010", frames=2, handles=0)
    return {"art": art.ref, "tmp": tmp_path}


@pytest.mark.parametrize("family", FAMILIES)
def test_family_register_train_render_continuity_verify_rerender_swap(family, tiny_models, film):
    other = tiny_models("flux" if family == "sd" else "sd")
    with backlot.session() as s:
        base = gen.register_model(s, "film", f"models/{family}", tiny_models(family))
        other_base = gen.register_model(s, "film", "models/other", other)
        a = gen.train_adapter(s, "film", "adapters/a", [film["art"]], base_model=base.ref,
                              settings=gen.TrainSettings(steps=5, seed=0))
        b = gen.train_adapter(s, "film", "adapters/b", [film["art"]], base_model=base.ref,
                              settings=gen.TrainSettings(steps=1, seed=1, lr=5e-3))
        first = gen.render_shot(s, "film", "sh010", settings(), base_model=base.ref, adapters=[gen.AdapterUse(a.ref)])
        loaded = loading._CACHE[base.content_hash]
        pipe = loaded.text2img
        second = gen.render_shot(s, "film", "sh020", settings("mara runs"), base_model=base.ref,
                                 adapters=[gen.AdapterUse(b.ref)])
        # hot swap: the same pipeline object, both adapters loaded once, b active
        assert loading._CACHE[base.content_hash] is loaded and loaded.text2img is pipe
        names = [f"lora_{x.content_hash[:20]}" for x in (a, b)]  # the cache may hold earlier tests' too
        assert set(names) <= loaded.adapters and [n for n, _ in loaded.active] == names[1:]
        redone = gen.rerender_version(s, second.ref)
        with pytest.raises(InvalidInputError, match=f" {family} adapter and film/models/other@1 is an? "):
            gen.render_shot(s, "film", "sh010", settings(), base_model=other_base.ref, adapters=[gen.AdapterUse(a.ref)])
    assert base.metadata["family"] == family and other_base.metadata["family"] != family
    for adapter in (a, b):
        assert adapter.metadata["family"] == adapter.recipe["family"] == family
        assert adapter.recipe["objective"] == OBJECTIVES[family]
    assert len(a.recipe["losses"]) == 5
    assert first.recipe["family"] == family and first.recipe["continuity"] is None
    # continuity: the second shot's input and the frame it started from, recorded
    last = sorted((f for f in first.files if f.path.startswith("frames/")), key=lambda f: f.path)[-1]
    assert ("continuity", first.ref) in {(i.role, i.ref) for i in second.inputs}
    assert second.recipe["continuity"] == first.ref
    assert second.recipe["continuity_frame"] == {"path": last.path, "sha256": last.sha256}
    assert len(frames_of(second)) == 2
    assert frames_of(redone) == frames_of(second) and ("regenerated_from", second.ref) in \
        {(i.role, i.ref) for i in redone.inputs}
    with backlot.session() as s:
        result = gen.verify_version(s, second.ref)  # a fresh process
    assert result.identical, result.detail


def test_legacy_records_read_as_their_family(tiny_models, film, tmp_path):
    """Base models registered before families (no "family" metadata) are read from their
    pipeline class; an adapter recording no family is an sd one."""
    with backlot.session() as s:
        folder = tiny_models("sd")
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        base = backlot.publish_version(s, "film", "models/old", files, kind="base_model",  # as registered before
                                       names=[str(p.relative_to(folder)) for p in files], status="approved",
                                       metadata={"pipeline_class": "StableDiffusionPipeline"})
        flux = gen.register_model(s, "film", "models/flux", tiny_models("flux"))
        weights = tmp_path / "pytorch_lora_weights.safetensors"
        weights.write_bytes(b"not read: refused before loading")
        old_adapter = backlot.publish_version(s, "film", "adapters/old", [weights], kind="adapter")
    with backlot.session() as s:
        version = gen.render_shot(s, "film", "sh010", settings(), base_model=base.ref, frames=1)
        with pytest.raises(InvalidInputError, match="is an? sd adapter and film/models/flux@1 is a flux base"):
            gen.plan_render(s, "film", "sh010", settings(), base_model=flux.ref, adapters=[gen.AdapterUse(old_adapter.ref)])
    assert version.recipe["family"] == "sd" and version.recipe["pipeline_class"] == "StableDiffusionPipeline"


def test_bad_input_is_refused_and_publishes_nothing(tiny_models, film, run, tmp_path):
    flux_folder = tiny_models("flux")
    unlisted = shutil.copytree(flux_folder, tmp_path / "unlisted")  # tokenizer_2 gone from index and folder
    shutil.rmtree(unlisted / "tokenizer_2")
    index = json.loads((unlisted / "model_index.json").read_text())
    del index["tokenizer_2"]
    (unlisted / "model_index.json").write_text(json.dumps(index))
    absent = shutil.copytree(flux_folder, tmp_path / "absent")  # listed, folder gone
    shutil.rmtree(absent / "transformer")
    unknown = shutil.copytree(flux_folder, tmp_path / "unknown")
    (unknown / "model_index.json").write_text(json.dumps({**index, "_class_name": "KandinskyV22Pipeline"}))
    with backlot.session() as s:
        flux = gen.register_model(s, "film", "models/flux", flux_folder)
        sd = gen.register_model(s, "film", "models/sd", tiny_models("sd"))
        before = s.scalar(select(func.count()).select_from(Version))
    cases = [
        (lambda s: gen.register_model(s, "film", "m", unlisted), "a flux model needs the components .* missing: tokenizer_2"),
        (lambda s: gen.register_model(s, "film", "m", absent), "components transformer are listed"),
        (lambda s: gen.register_model(s, "film", "m", unknown), "'KandinskyV22Pipeline' is not one .* supported families: sd "),
        (lambda s: gen.render_shot(s, "film", "sh010", gen.RenderSettings(prompt="x", negative_prompt="blur"),
                                   base_model=flux.ref), "takes no negative prompt"),
        (lambda s: gen.render_shot(s, "film", "sh010", gen.RenderSettings(prompt="x", width=72, height=64),
                                   base_model=flux.ref), "multiples of 16"),
    ] + [(lambda s, ref=ref: gen.render_shot(s, "film", "sh010", settings(), base_model=ref, frames=0),
          "at least one frame") for ref in (flux.ref, sd.ref)]
    for call, message in cases:
        with pytest.raises(InvalidInputError, match=message):
            with backlot.session() as s:
                call(s)
    run("model", "register", "film", "m", unknown, code=2)
    assert "supported families" in run("model", "tiny", "film", "--family", "kandinsky", code=2).stderr
    with backlot.session() as s:
        assert s.scalar(select(func.count()).select_from(Version)) == before


def test_cli_builds_a_family_stand_in(run, film):
    result = run("model", "tiny", "film", "--family", "sdxl", "--json")
    version = json.loads(result.stdout)
    assert version["ref"] == "film/models/tiny_sdxl@1" and version["metadata"]["family"] == "sdxl"
    assert version["metadata"]["pipeline_class"] == "StableDiffusionXLPipeline"
    assert "--video is --family animatediff" in run("model", "tiny", "film", "--video", "--family", "flux", code=2).stderr


def test_sd_style_training_follows_the_schedulers_prediction_type(tiny_models, tmp_path):
    """v-prediction where the scheduler config says so (epsilon otherwise), recorded."""
    folder = shutil.copytree(tiny_models("sd"), tmp_path / "vpred")
    config = json.loads((folder / "scheduler/scheduler_config.json").read_text())
    (folder / "scheduler/scheduler_config.json").write_text(json.dumps({**config, "prediction_type": "v_prediction"}))
    art = [make_art(tmp_path / "a.png", 3)]
    quick = gen.TrainSettings(steps=2)
    v = gen.run_training(folder, art, ["mara"], quick, tmp_path / "v")
    eps = gen.run_training(tiny_models("sd"), art, ["mara"], quick, tmp_path / "eps")
    assert v.objective == {"objective": "v_prediction"} and eps.objective == {"objective": "epsilon"}
    assert v.eval_loss_before != eps.eval_loss_before  # same weights and draws, another target
