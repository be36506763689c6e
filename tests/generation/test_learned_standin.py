"""The learned stand-in: it has learned the world, adapters move it, continuity holds cuts together.

These tests fail on the random-weight tiny model: its renders have no figure in the right
palette, an adapter cannot pull a figure that is not there toward a costume, and img2img
from a noise frame keeps nothing that a cut could continue.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import backlot
from backlot import generation as gen
from backlot.generation.continuity import cached_shot_continuity, frame_paths, shot_continuity
from backlot.generation.models import version_folder
from backlot.generation.standin import learn, world
from backlot.generation.standin.palette import figure_colour, figure_mask, palette_distance, sheet_colour
from backlot.services.api.review.render import continuity_pane

from backlot.services.cli.demo import RENDER, TRAIN

SEEDS = (0, 1, 2, 3)
ADAPTER = gen.TrainSettings(**TRAIN)  # what the demo trains with
SCENE = world.Scene("mara", "square", "noon", "left")


@pytest.fixture(scope="session")
def standin_folder(tmp_path_factory) -> Path:
    """Built once for the run (its own cache, since BACKLOT_HOME is per test)."""
    root = tmp_path_factory.mktemp("standin")
    if os.environ.get("BACKLOT_TEST_STANDIN_RANDOM") == "1":  # to see these tests fail on random weights
        return gen.build_tiny_pipeline(root / "random", seed=0)
    # The run's shared cache (tests/conftest.py sets BACKLOT_STANDIN_CACHE): the demo and CLI
    # tests use the same build; BACKLOT_TEST_STANDIN_CACHE keeps one between runs.
    cache = Path(os.environ["BACKLOT_TEST_STANDIN_CACHE"]) if os.environ.get("BACKLOT_TEST_STANDIN_CACHE") else None
    return learn.build_learned_pipeline(root / "model", seed=0, cache=cache)


def tree_hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def film(db_url, standin_folder, tmp_path):
    """A project on the stand-in, with mara's concept art in her new costume (sheet and two scenes)
    approved, and two shots."""
    art = []
    with backlot.session() as s:
        backlot.create_project(s, "film")
        base = gen.register_model(s, "film", "models/standin", standin_folder)
        for label, picture, caption in world.concept_art("mara", costume=True):
            path = tmp_path / f"mara_{label}.png"
            Image.fromarray(picture).save(path)
            version = backlot.publish_version(s, "film", f"characters/mara_{label}", [path], kind="concept_art",
                                              status="approved")
            art.append((version.ref, caption))
        for code in ("sh010", "sh020"):
            backlot.create_shot(s, "film", code, sequence="sq010", frames=3, handles=0)
    return {"base": base.ref, "art": art, "sheet": world.draw_sheet(world.COSTUMES["mara"])}


def render(s, shot: str, scene: world.Scene, seed: int, adapters=(), **kwargs):
    settings = gen.RenderSettings(**{**RENDER, "prompt": scene.caption, "seed": seed})  # the demo's settings
    return gen.render_shot(s, "film", shot, settings, base_model="film/models/standin@approved",
                           adapters=[gen.AdapterUse(ref, 1.0) for ref in adapters], **kwargs)


def first_frame(version) -> np.ndarray:
    with Image.open(frame_paths(version)[0]) as image:
        return np.asarray(image.convert("RGB"))


def test_build_is_deterministic_and_cached(standin_folder, tmp_path):
    cache = os.environ.get("BACKLOT_TEST_STANDIN_CACHE") or standin_folder.parent / "cache"
    config = json.loads((standin_folder / learn.RECIPE_NAME).read_text())["config"]
    again = learn.build_learned_pipeline(tmp_path / "again", config=learn.LearnConfig(
        **{**config, "unet_channels": tuple(config["unet_channels"])}), cache=Path(cache))
    assert tree_hashes(again) == tree_hashes(standin_folder), "the cached build is copied as it is"
    record = (standin_folder / learn.RECIPE_NAME).read_text()
    assert '"threads"' in record and '"seed": 0' in record


def test_build_from_scratch_writes_the_same_bytes(tmp_path):
    """Two builds in fresh caches (same seed, config and threads) write byte-identical files; another
    seed does not. A short training run: the same code path as the full build, at a tenth of the cost."""
    short = dict(steps=12, jittered=16, threads=1)
    one = learn.build_learned_pipeline(tmp_path / "one", config=learn.LearnConfig(**short), cache=tmp_path / "c1")
    two = learn.build_learned_pipeline(tmp_path / "two", config=learn.LearnConfig(**short), cache=tmp_path / "c2")
    other = learn.build_learned_pipeline(tmp_path / "other", config=learn.LearnConfig(seed=1, **short),
                                         cache=tmp_path / "c3")
    assert tree_hashes(one) == tree_hashes(two)
    assert tree_hashes(other)["unet/diffusion_pytorch_model.safetensors"] != \
        tree_hashes(one)["unet/diffusion_pytorch_model.safetensors"]


def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc (Linux)")
def test_build_helpers_die_with_a_killed_build(tmp_path):
    """A build split across worker processes: SIGKILL the building process and its helpers go
    too (the kernel's parent-death signal), and nothing is cached."""
    import signal
    import subprocess
    import sys
    import time

    script = ("from pathlib import Path; from backlot.generation.standin import learn; "
              f"learn.build_learned_pipeline(Path({str(tmp_path / 'out')!r}), "
              f"config=learn.LearnConfig(steps=100000, jittered=16), cache=Path({str(tmp_path / 'cache')!r}))")
    build = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 120
        while not (helpers := children_of(build.pid)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert helpers, "the build started no helper process"
        time.sleep(3)  # into the training loop
        build.send_signal(signal.SIGKILL)
        build.wait()
        deadline = time.monotonic() + 15
        while running(helpers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not running(helpers), f"helpers {running(helpers)} outlived the killed build"
    finally:
        build.kill()
    assert not list((tmp_path / "cache").glob("seed*")), "a killed build cached nothing"
    assert list((tmp_path / "cache").glob(".building-*")), "its working folder is left behind..."
    learn.build_learned_pipeline(tmp_path / "next", config=learn.LearnConfig(steps=2, jittered=4),
                                 cache=tmp_path / "cache")
    assert not list((tmp_path / "cache").glob(".building-*")), "...until the next build removes it"


def running(pids: list[int]) -> list[int]:
    """Those of `pids` still running (gone or a zombie: not)."""
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.append(pid)
    return alive


def test_renders_show_the_prompted_character_in_its_palette(film):
    """Without an adapter, the figure in a render is nearest in colour to the prompted character's
    own sheet (among every character and the costume): the model learned who is who."""
    sheets = {name: sheet_colour(world.draw_sheet(c)) for name, c in world.CHARACTERS.items()}
    sheets["mara in costume"] = sheet_colour(world.draw_sheet(world.COSTUMES["mara"]))
    places, found = [], []
    with backlot.session() as s:
        for who in ("mara", "ovid"):
            scene = world.Scene(who, "square", "noon", "left")
            for seed in SEEDS:
                frame = first_frame(render(s, "sh010", scene, seed, frames=1, continuity=False))
                colour, centre = figure_colour(frame, scene)
                assert colour is not None, f"{who}, seed {seed}: no figure in the render"
                nearest = min(sheets, key=lambda name: np.linalg.norm(colour - sheets[name]))
                found.append((who, seed, nearest))
                places.append(centre)
    print("figure centres for 'on the left' (x of 64):", [round(c) for c in places])
    print("(prompted, seed, nearest palette):", found)
    # Measured: every render right, centres 15-22 (the left place is x=16; centre 32, right 48).
    # One miss is allowed for float differences between CPUs; random weights get none right.
    assert sum(1 for w, _, n in found if w == n) >= len(found) - 1, found
    assert sum(1 for c in places if abs(c - world.PLACES["left"]) <= 8) >= len(places) - 1, places


def test_light_follows_the_prompt(film):
    """An empty set's render has the mean colour of the world's picture of it under the prompted
    light: night is dark and blue, dusk warm (the zero-terminal-SNR schedule lets a render's mean
    move; on the usual schedule every render came out at one brightness)."""
    errors, brightness = {}, {}
    with backlot.session() as s:
        for light in world.LIGHTS:
            scene = world.Scene(None, "square", light)
            drawn = world.draw_scene(scene).reshape(-1, 3).mean(axis=0)
            frames = [first_frame(render(s, "sh010", scene, seed, frames=1, continuity=False)) for seed in SEEDS[:2]]
            means = [frame.reshape(-1, 3).mean(axis=0) for frame in frames]
            errors[light] = round(float(np.mean([np.abs(m - drawn).mean() for m in means])), 1)
            brightness[light] = float(np.mean(means))
    print("mean colour error against the drawn set, per light:", errors)
    assert max(errors.values()) < 25, errors
    assert brightness["night"] < brightness["dusk"] < brightness["noon"], brightness


def test_costume_adapter_moves_renders_toward_the_costume(film):
    """Trained on mara's new-costume concept art, the adapter pulls her renders toward the costume's
    palette, on every seed, in a scene that is not in the concept art (the square at dusk)."""
    scene = world.Scene("mara", "square", "dusk", "left")
    with backlot.session() as s:
        adapter = gen.train_adapter(s, "film", "adapters/mara", [ref for ref, _ in film["art"]],
                                    base_model=film["base"], captions=[c for _, c in film["art"]], settings=ADAPTER)
        distances, figure_shift, set_shift = [], [], []
        for seed in SEEDS:
            plain = first_frame(render(s, "sh010", scene, seed, frames=1, continuity=False))
            dressed = first_frame(render(s, "sh010", scene, seed, [adapter.ref], frames=1, continuity=False))
            distances.append((palette_distance(plain, scene, film["sheet"]),
                              palette_distance(dressed, scene, film["sheet"])))
            figure = figure_mask(plain) | figure_mask(dressed)
            change = np.abs(dressed.astype(np.float32) - plain)
            figure_shift.append(float(change[figure].mean()))
            set_shift.append(float(change[~figure].mean()))
    print("palette distance to the costume (without, with adapter):", [(round(a), round(b)) for a, b in distances])
    print(f"mean change with the adapter: figure {np.mean(figure_shift):.1f}, set {np.mean(set_shift):.1f}")
    closer = [seed for seed, (without, with_adapter) in zip(SEEDS, distances) if with_adapter < without]
    # Measured: about 215 without, 93-97 with, on every seed (the figure turns green).
    assert closer == list(SEEDS), distances
    assert np.mean([b for _, b in distances]) < np.mean([a for a, _ in distances]) - 50, distances
    # The new look is on the figure, not the set: measured 59 against 12 (a light tint remains).
    assert np.mean(figure_shift) > 3 * np.mean(set_shift), (figure_shift, set_shift)


def test_continuity_lowers_the_boundary_difference(film):
    """sh020 continues from sh010's last frame; against --no-continuity on the same seeds."""
    first_scene = world.Scene("mara", "square", "dusk", "left")
    second_scene = world.Scene("ovid", "square", "dusk", "right")
    ratios = []
    with backlot.session() as s:
        for seed in SEEDS:
            before = render(s, "sh010", first_scene, seed)
            joined = render(s, "sh020", second_scene, seed, continuity=before.ref)
            cut = render(s, "sh020", second_scene, seed, continuity=False)
            with_figures = shot_continuity(s, joined)
            without_figures = shot_continuity(s, cut, previous=before)
            # The review page's figures: the same, and a render without continuity is measured
            # against the previous shot's current version (the latest sh010 render here).
            assert cached_shot_continuity(s, joined) == with_figures
            assert cached_shot_continuity(s, cut).boundary == without_figures.boundary
            assert f"{with_figures.boundary:.1f}" in continuity_pane(with_figures)
            assert with_figures.boundary_from == before.ref and with_figures.frames == 3
            ratios.append(with_figures.boundary / without_figures.boundary)
            assert with_figures.within is not None and with_figures.within < without_figures.boundary
    print("boundary difference, continuity / no continuity, per seed:", [round(r, 3) for r in ratios])
    # Goal 0.5x; measured 0.50-0.55 per seed: the floor is the stand-in's grain, which even one
    # re-noised step redraws. Every seed must at least cut the jump by a third.
    assert max(ratios) < 0.67, ratios


def test_verify_is_byte_exact_on_the_standin(film):
    with backlot.session() as s:
        first = render(s, "sh010", SCENE, 5)
        second = render(s, "sh020", world.Scene("ovid", "square", "noon", "right"), 5)
    with backlot.session() as s:
        for version in (first, second):
            assert gen.verify_version(s, version.ref).identical, version.ref
    assert version_folder(second).is_dir()


def test_model_tiny_builds_the_learned_stand_in_by_default(run, standin_folder):
    """`backlot model tiny` registers the learned stand-in (the run's cached build: its bytes);
    `--random` and `--family` keep the random-weight builders; a learned non-sd model is refused."""
    run("project", "create", "film")
    learned = json.loads(run("model", "tiny", "film", "--json").stdout)
    assert learned["ref"] == "film/models/tiny@1" and learned["metadata"]["stand_in"] == "learned"
    assert learned["content_hash"] != json.loads(run("model", "tiny", "film", "--random", "--json").stdout)["content_hash"]
    with backlot.session() as s:
        folder = gen.version_folder(backlot.get_version(s, learned["ref"]))
    assert tree_hashes(folder) == tree_hashes(standin_folder)
