"""LoRA adapters trained with peft on concept-art versions.

The loop follows diffusers' text-to-image LoRA example (frozen VAE and text encoder,
LoRA on the UNet's attention projections, epsilon-prediction MSE on noised latents), with
two things that make it cheaper and exact: the frozen encoders run once, before the loop
(latents and text embeddings are cached), and every random draw comes from one seeded
generator, so the same recipe and data write the same weights.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from sqlalchemy.orm import Session

from backlot.errors import InvalidInputError
from backlot.generation.device import library_versions, pick_device, quiet_libraries
from backlot.generation.loading import LORA_WEIGHTS
from backlot.generation.media import load_image
from backlot.generation.models import version_folder
from backlot.refs import parse_version_ref
from backlot.storage import Store
from backlot.tracker import VersionRecord, get_version, publish_version

TARGET_MODULES = ["to_k", "to_q", "to_v", "to_out.0"]
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


def train_adapter(session: Session, project: str, name: str, concept_art: Sequence[str], *,
                  base_model: str, captions: Sequence[str] = (), settings: TrainSettings = TrainSettings(),
                  store: Store | None = None, progress: Callable[[int, float], None] | None = None,
                  idempotency_key: str | None = None, actor: str | None = None,
                  extra_inputs: Sequence[tuple[str, int]] = ()) -> VersionRecord:
    """Train a LoRA on concept-art versions and publish it as a new `adapter` version."""
    settings.check()
    if not concept_art:
        raise InvalidInputError("give at least one concept-art version to train on (--from PROJECT/ASSET@N)")
    base = get_version(session, base_model)
    if base.kind != "base_model":
        raise InvalidInputError(f"{base.ref} is a {base.kind}, not a base_model")
    arts = [get_version(session, ref) for ref in concept_art]
    for art in arts:
        if art.kind not in ("concept_art", "reference"):
            raise InvalidInputError(f"{art.ref} is a {art.kind}; train on concept_art versions")
    images = [_art_image(art, store) for art in arts]
    texts = _captions(captions, arts)
    with tempfile.TemporaryDirectory() as tmp:
        result = run_training(version_folder(base, store), images, texts, settings, Path(tmp), progress)
        recipe = {
            "kind": "lora_training", "trainer": "backlot.lora.v1", **asdict(settings),
            "training_data": [a.ref for a in arts],  # in training order (a retrain keeps it)
            "target_modules": TARGET_MODULES, "lora_alpha": settings.rank, "init": "gaussian",
            "optimizer": "AdamW", "captions": texts, "caption_truncated": result.prompt_truncated,
            "data_corrections": result.corrections, "losses": [round(x, 6) for x in result.losses],
            "eval_loss_before": round(result.eval_loss_before, 6), "eval_loss_after": round(result.eval_loss_after, 6),
            "base_model": base.content_hash, "versions": library_versions(), "device_class": pick_device().device_class,
        }
        inputs = [("training_data", a.id) for a in arts] + [("base_model", base.id)] + list(extra_inputs)
        return publish_version(session, project, name, [result.folder / LORA_WEIGHTS], kind="adapter",
                               inputs=inputs, recipe=recipe, store=store, actor=actor, idempotency_key=idempotency_key,
                               media_type="application/x-lora-safetensors",
                               metadata={"rank": settings.rank, "steps": settings.steps})


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
                 out: Path, progress: Callable[[int, float], None] | None = None) -> TrainResult:
    """The training itself, on files; returns the LoRA folder and the loss curve."""
    quiet_libraries()
    import torch
    import torch.nn.functional as F
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    device = pick_device()
    if json.loads((base_folder / "model_index.json").read_text()).get("_class_name") != "StableDiffusionPipeline":
        raise InvalidInputError(f"{base_folder.name}: LoRA training needs a Stable-Diffusion-style image base; "
                                "training on a video base model is not supported yet")
    pipe = StableDiffusionPipeline.from_pretrained(base_folder, local_files_only=True)  # fresh: training edits the UNet
    for module in (pipe.unet, pipe.vae, pipe.text_encoder):
        module.requires_grad_(False)
        module.to(device.name)
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
    with torch.no_grad():
        batch = torch.stack(pixels).to(device.name)
        latents = pipe.vae.encode(batch).latent_dist.sample(generator=generator) * pipe.vae.config.scaling_factor
        tokens = pipe.tokenizer(list(captions), padding="max_length", max_length=pipe.tokenizer.model_max_length,
                                truncation=True, return_tensors="pt")
        truncated = [len(pipe.tokenizer(c).input_ids) > pipe.tokenizer.model_max_length for c in captions]
        embeddings = pipe.text_encoder(tokens.input_ids.to(device.name))[0]

    torch.manual_seed(settings.seed)  # LoRA's gaussian init draws from the global generator
    pipe.unet.add_adapter(LoraConfig(r=settings.rank, lora_alpha=settings.rank, init_lora_weights="gaussian",
                                     target_modules=TARGET_MODULES))
    params = [p for p in pipe.unet.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.lr)
    scheduler = pipe.scheduler
    steps_total = scheduler.config.num_train_timesteps

    def loss_on(index, noise, timesteps):
        noisy = scheduler.add_noise(latents[index], noise, timesteps)
        prediction = pipe.unet(noisy, timesteps, embeddings[index]).sample
        return F.mse_loss(prediction.float(), noise.float())

    eval_generator = torch.Generator(device="cpu").manual_seed(settings.seed + 1)
    eval_draws = [(torch.arange(len(latents)), torch.randn(latents.shape, generator=eval_generator),
                   torch.randint(0, steps_total, (len(latents),), generator=eval_generator))
                  for _ in range(EVAL_SAMPLES)]

    def evaluate() -> float:
        with torch.no_grad():
            return float(sum(loss_on(i, n.to(device.name), t.to(device.name)) for i, n, t in eval_draws) / EVAL_SAMPLES)

    before = evaluate()
    losses = []
    pipe.unet.train()
    for step in range(settings.steps):
        index = torch.randint(0, len(latents), (settings.batch_size,), generator=generator)
        noise = torch.randn((settings.batch_size, *latents.shape[1:]), generator=generator).to(device.name)
        timesteps = torch.randint(0, steps_total, (settings.batch_size,), generator=generator).to(device.name)
        loss = loss_on(index, noise, timesteps)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        if progress:
            progress(step + 1, losses[-1])
    pipe.unet.eval()
    after = evaluate()
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(pipe.unet))
    folder = out / "lora"
    StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=layers, safe_serialization=True,
                                              weight_name=LORA_WEIGHTS)
    return TrainResult(folder, losses, before, after, corrections, truncated)


def _to_array(image):
    import numpy as np

    return np.asarray(image, dtype=np.float32) / 255.0
