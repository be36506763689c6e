"""LoRA adapters trained with peft on concept-art versions.

The loop follows diffusers' LoRA examples (frozen VAE and text encoders, LoRA on the
denoiser's attention projections); the base model's family supplies the objective
(families/): epsilon or v-prediction MSE as the scheduler says for SD-style models, flow
matching with the SD3/Flux examples' timestep sampling and loss weighting for Flux and Wan.
Two things make it cheaper and exact: the frozen encoders run once, before the loop
(latents and text embeddings are cached), and every random draw comes from one seeded
generator, so the same recipe and data write the same weights. The adapter records its
family (metadata and recipe); rendering refuses it on another family's base.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from sqlalchemy.orm import Session

from backlot.errors import InvalidInputError, article
from backlot.generation.device import library_versions, pick_device, quiet_libraries
from backlot.generation.families import detect_family, family_of_version
from backlot.generation.families.base import ATTENTION_PROJECTIONS, LORA_WEIGHTS
from backlot.generation.media import load_image
from backlot.generation.models import version_folder
from backlot.provenance.clearance import ClearanceOverride, check_training_clearance
from backlot.refs import parse_version_ref
from backlot.storage import Store
from backlot.tracker import VersionRecord, get_version, publish_version

TARGET_MODULES = list(ATTENTION_PROJECTIONS)  # SD-style UNets; each family says its own
EVAL_SAMPLES = 4


@dataclass(frozen=True)
class TrainSettings:
    rank: int = 4
    steps: int = 100
    lr: float = 1e-3
    resolution: int = 64
    seed: int = 0
    batch_size: int = 1

    def check(self) -> None:
        for name in ("rank", "steps", "resolution", "batch_size"):
            if getattr(self, name) < 1:
                raise InvalidInputError(f"--{name} must be at least 1")
        if not 0 < self.lr < 1:
            raise InvalidInputError(f"--lr {self.lr} is out of range: use a small positive rate such as 1e-4")
        if self.resolution % 8:
            raise InvalidInputError(f"--resolution {self.resolution} must be a multiple of 8")


@dataclass
class TrainResult:
    folder: Path
    losses: list[float]
    eval_loss_before: float
    eval_loss_after: float
    corrections: list[str] = field(default_factory=list)
    prompt_truncated: list[bool] = field(default_factory=list)
    family: str = "sd"
    target_modules: list[str] | str = field(default_factory=lambda: list(TARGET_MODULES))
    objective: dict = field(default_factory=dict)


def train_adapter(session: Session, project: str, name: str, concept_art: Sequence[str], *,
                  base_model: str, captions: Sequence[str] = (), settings: TrainSettings = TrainSettings(),
                  store: Store | None = None, progress: Callable[[int, float], None] | None = None,
                  idempotency_key: str | None = None, actor: str | None = None,
                  extra_inputs: Sequence[tuple[str, int]] = (),
                  clearance_override: str | ClearanceOverride | None = None) -> VersionRecord:
    """Train a LoRA on concept-art versions and publish it as a new `adapter` version."""
    settings.check()
    if not concept_art:
        raise InvalidInputError("give at least one concept-art version to train on (--from PROJECT/ASSET@N)")
    base = get_version(session, base_model)
    if base.kind != "base_model":
        raise InvalidInputError(f"{base.ref} is {article(base.kind)}, not a base_model")
    family = family_of_version(base)
    arts = [get_version(session, ref) for ref in concept_art]
    for art in arts:
        if art.kind not in ("concept_art", "reference"):
            raise InvalidInputError(f"{art.ref} is {article(art.kind)}; train on concept_art versions")
    cleared = check_training_clearance(session, arts, override=clearance_override, actor=actor)  # before training
    images = [_art_image(art, store) for art in arts]
    texts = _captions(captions, arts)
    with tempfile.TemporaryDirectory() as tmp:
        result = run_training(version_folder(base, store), images, texts, settings, Path(tmp), progress,
                              family=family.name)
        recipe = {
            "kind": "lora_training", "trainer": "backlot.lora.v1", **asdict(settings), "family": result.family,
            **result.objective,
            "training_data": [a.ref for a in arts],  # in training order (a retrain keeps it)
            "target_modules": result.target_modules, "lora_alpha": settings.rank, "init": "gaussian",
            "optimizer": "AdamW", "captions": texts, "caption_truncated": result.prompt_truncated,
            "data_corrections": result.corrections, "losses": [round(x, 6) for x in result.losses],
            "eval_loss_before": round(result.eval_loss_before, 6), "eval_loss_after": round(result.eval_loss_after, 6),
            "base_model": base.content_hash, "versions": library_versions(), "device_class": pick_device().device_class,
        }
        inputs = [("training_data", a.id) for a in arts] + [("base_model", base.id)] + list(extra_inputs)
        return publish_version(session, project, name, [result.folder / LORA_WEIGHTS], kind="adapter",
                               inputs=inputs, recipe=recipe, store=store, actor=actor, idempotency_key=idempotency_key,
                               media_type="application/x-lora-safetensors",
                               metadata={"rank": settings.rank, "steps": settings.steps, "family": result.family,
                                         **cleared})


def _art_image(art: VersionRecord, store: Store | None) -> Path:
    images = [f for f in art.files if f.path.lower().endswith((".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".exr"))]
    if not images:
        raise InvalidInputError(f"{art.ref} holds no image file (has: {', '.join(f.path for f in art.files)})")
    return version_folder(art, store) / images[0].path


def _captions(captions: Sequence[str], arts: Sequence[VersionRecord]) -> list[str]:
    if len(captions) > 1 and len(captions) != len(arts):
        raise InvalidInputError(f"give one caption, or one per concept-art version ({len(arts)}), not {len(captions)}")
    if captions:
        return list(captions) * (len(arts) if len(captions) == 1 else 1)
    return [parse_version_ref(a.ref).asset.replace("/", " ").replace("_", " ") for a in arts]


def run_training(base_folder: Path, image_paths: Sequence[Path], captions: Sequence[str], settings: TrainSettings,
                 out: Path, progress: Callable[[int, float], None] | None = None,
                 family: str | None = None) -> TrainResult:
    """The training itself, on files; returns the LoRA folder and the loss curve. `family` is
    the base model's (detected from model_index.json when not given)."""
    quiet_libraries()
    import torch
    from peft import LoraConfig

    from backlot.generation.families import get_family

    device = pick_device()
    chosen = get_family(family) if family else detect_family(json.loads((base_folder / "model_index.json").read_text()))
    chosen.check_trainable(base_folder)
    pipe = chosen.training_pipeline(base_folder, device)  # fresh: training edits the denoiser
    denoiser = chosen.denoiser(pipe)
    size = (settings.resolution, settings.resolution)
    corrections = []
    pixels = []
    for path in image_paths:
        image = load_image(path)
        if image.size != size:
            corrections.append(f"{path.name}: resized {image.size[0]}x{image.size[1]} -> {size[0]}x{size[1]}")
            image = load_image(path, size)
        pixels.append(torch.from_numpy(_to_array(image)).permute(2, 0, 1) * 2 - 1)
    generator = torch.Generator(device="cpu").manual_seed(settings.seed)
    data = chosen.encode_training_data(pipe, torch.stack(pixels), list(captions), generator, device)
    rows = len(data.latents)

    torch.manual_seed(settings.seed)  # LoRA's gaussian init draws from the global generator
    targets = chosen.lora_target_modules
    denoiser.add_adapter(LoraConfig(r=settings.rank, lora_alpha=settings.rank, init_lora_weights="gaussian",
                                    target_modules=list(targets) if not isinstance(targets, str) else targets))
    params = [p for p in denoiser.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.lr)

    eval_generator = torch.Generator(device="cpu").manual_seed(settings.seed + 1)
    eval_draws = [(torch.arange(rows), chosen.draw_noise(pipe, data, rows, eval_generator))
                  for _ in range(EVAL_SAMPLES)]

    def evaluate() -> float:
        with torch.no_grad():
            return float(sum(chosen.training_loss(pipe, data, i, d) for i, d in eval_draws) / EVAL_SAMPLES)

    before = evaluate()
    losses = []
    denoiser.train()
    for step in range(settings.steps):
        index = torch.randint(0, rows, (settings.batch_size,), generator=generator)
        loss = chosen.training_loss(pipe, data, index, chosen.draw_noise(pipe, data, settings.batch_size, generator))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        if progress:
            progress(step + 1, losses[-1])
    denoiser.eval()
    after = evaluate()
    folder = chosen.save_lora(pipe, out / "lora")
    return TrainResult(folder, losses, before, after, corrections, data.truncated, chosen.name,
                       list(targets) if not isinstance(targets, str) else targets, chosen.training_recipe(pipe))


def _to_array(image):
    import numpy as np

    return np.asarray(image, dtype=np.float32) / 255.0
