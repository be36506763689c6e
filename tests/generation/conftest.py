"""Generation fixtures: the tiny model built once per run, concept art made procedurally."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import backlot
from backlot import generation as gen


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory) -> Path:
    return gen.build_tiny_pipeline(tmp_path_factory.mktemp("tiny") / "tiny", seed=0)


def make_art(path: Path, seed: int, size=(64, 64)) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray((rng.random((size[1], size[0], 3)) * 255).astype("uint8")).save(path)
    return path


@pytest.fixture
def production(db_url, tiny_folder, tmp_path):
    """A committed project with the tiny base model, approved concept art and two shots."""
    with backlot.session() as s:
        backlot.create_project(s, "film")
        base = gen.register_model(s, "film", "models/tiny", tiny_folder)
        art = backlot.publish_version(s, "film", "characters/mara", [make_art(tmp_path / "mara.png", 1)],
                                       kind="concept_art", status="approved")
        for code in ("sh010", "sh020"):
            backlot.create_shot(s, "film", code, sequence="sq010", frames=3, handles=1)
    return {"base": base.ref, "art": art.ref, "tmp": tmp_path}
