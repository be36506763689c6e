"""Benchmark: generation on the tiny model, Backlot side by side with plain diffusers.

    .venv/bin/python -m tests.benchmarks.bench_generation [--steps 40] [--frames 24] [--swaps 20]
    BACKLOT_DEVICE=cuda python -m tests.benchmarks.bench_generation --size sd15 --steps 20 --frames 8 --rounds 1

(a) LoRA training steps/s: Backlot's trainer vs a plain loop written the way diffusers'
    text-to-image LoRA example trains (VAE and text encoder run every step); same model,
    data, rank, batch, steps.
(b) Switching adapters: Backlot's hot-swap in a loaded pipeline vs rebuilding the pipeline
    and loading the adapter again.
(c) Render throughput, frames/s: Backlot's render (frames, MP4 preview, thumbnail written)
    vs calling the diffusers pipelines directly for the same frames (nothing written).
Runs on the CPU here; on a CUDA machine BACKLOT_DEVICE=cuda runs the same code there, and
`--size sd15` builds a model of Stable Diffusion 1.5's shapes (860M-parameter UNet, its VAE
and a CLIP ViT-L-sized text encoder) with seeded random weights: it times like the real one.
Both sides always run on the same device.
"""

from __future__ import annotations

import argparse
from statistics import median
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from backlot.generation.device import pick_device, quiet_libraries
from backlot.generation.loading import LORA_WEIGHTS, activate_adapters, clear_cache, load_pipeline
from backlot.generation.rendering import RenderPlan, RenderSettings, render_frames
from backlot.generation.tiny import MAX_TOKENS, build_tiny_pipeline, byte_level_vocab
from backlot.generation.training import TARGET_MODULES, TrainSettings, run_training
from backlot.tracker.records import VersionRecord


def fake_version(vid: int, folder: Path, kind: str) -> VersionRecord:
    """A record pointing at a folder, so the renderer runs without a database (location metadata)."""
    import datetime

    return VersionRecord(vid, f"bench/{kind}@{vid}", "bench", kind, kind, 1, "approved", f"{vid:064x}", "x", "bench",
                         datetime.datetime.now(), {"location": str(folder)}, None, None)


def build_sd15_sized(folder: Path, seed: int = 0) -> Path:
    """A pipeline of Stable Diffusion 1.5's shapes with seeded random weights (no download)."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    vocab, merges = byte_level_vocab()
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8)
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        sample_size=512)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
        num_attention_heads=12, max_position_embeddings=MAX_TOKENS, bos_token_id=vocab["<|startoftext|>"],
        eos_token_id=vocab["<|endoftext|>"], pad_token_id=vocab["<|endoftext|>"]))
    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085,
                              beta_end=0.012, clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, unet=unet, scheduler=scheduler,
                                   tokenizer=CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=MAX_TOKENS),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def plain_training(base: Path, images: list[Path], caption: str, settings: TrainSettings) -> float:
    """The diffusers-example way: encode images and captions inside the loop. Returns seconds."""
    import torch
    import torch.nn.functional as F
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig

    device = pick_device().name
    pipe = StableDiffusionPipeline.from_pretrained(base, local_files_only=True)
    for module in (pipe.unet, pipe.vae, pipe.text_encoder):
        module.requires_grad_(False)
        module.to(device)
    torch.manual_seed(settings.seed)
    pipe.unet.add_adapter(LoraConfig(r=settings.rank, lora_alpha=settings.rank, init_lora_weights="gaussian",
                                     target_modules=TARGET_MODULES))
    optimizer = torch.optim.AdamW([p for p in pipe.unet.parameters() if p.requires_grad], lr=settings.lr)
    pixels = torch.stack([torch.from_numpy(np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) / 127.5 - 1)
                          .permute(2, 0, 1) for p in images]).to(device)
    ids = pipe.tokenizer([caption] * len(images), padding="max_length", truncation=True,
                         max_length=pipe.tokenizer.model_max_length, return_tensors="pt").input_ids.to(device)
    _sync()
    started = time.perf_counter()
    for _ in range(settings.steps):
        index = torch.randint(0, len(images), (settings.batch_size,))
        latents = pipe.vae.encode(pixels[index]).latent_dist.sample() * pipe.vae.config.scaling_factor
        hidden = pipe.text_encoder(ids[index])[0]
        noise = torch.randn_like(latents)
        timesteps = torch.randint(0, pipe.scheduler.config.num_train_timesteps, (settings.batch_size,), device=device)
        noisy = pipe.scheduler.add_noise(latents, noise, timesteps)
        loss = F.mse_loss(pipe.unet(noisy, timesteps, hidden).sample.float(), noise.float())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    _sync()
    return time.perf_counter() - started


def bench_training(base: Path, images: list[Path], steps: int, tmp: Path, size: int) -> tuple[float, float]:
    settings = TrainSettings(steps=steps, rank=4, lr=1e-3, seed=0, batch_size=1, resolution=size)
    started = time.perf_counter()
    timings = {}

    def tick(step, _loss):
        if step == 1:
            timings["first"] = time.perf_counter()
    run_training(base, images, ["mara"] * len(images), settings, tmp / "lora_a", tick)
    backlot = (time.perf_counter() - timings.get("first", started)) / max(steps - 1, 1)
    plain = plain_training(base, images, "mara", settings) / steps
    return 1 / backlot, 1 / plain


def bench_swap(base: Path, adapters: list[Path], swaps: int) -> tuple[float, float]:
    from diffusers import StableDiffusionPipeline

    clear_cache()
    loaded = load_pipeline("bench-base", base)
    uses = [(f"lora_{i}", folder, 1.0) for i, folder in enumerate(adapters)]
    for use in uses:
        activate_adapters(loaded, [use])  # first load of each, not timed
    started = time.perf_counter()
    for i in range(swaps):
        activate_adapters(loaded, [uses[i % len(uses)]])
    hot = (time.perf_counter() - started) / swaps
    started = time.perf_counter()
    device = pick_device()
    for i in range(max(3, swaps // 4)):
        pipe = StableDiffusionPipeline.from_pretrained(base, dtype=device.torch_dtype(), local_files_only=True)
        pipe.to(device.name)
        pipe.load_lora_weights(str(adapters[i % len(adapters)]), weight_name=LORA_WEIGHTS, adapter_name="a")
    rebuild = (time.perf_counter() - started) / max(3, swaps // 4)
    return hot, rebuild


def bench_render(base: Path, adapter: Path, frames: int, tmp: Path, size: int,
                 steps: int = 8) -> tuple[float, float, bool]:
    """Frames/s of Backlot and of direct calls, and whether two Backlot renders gave the same bytes."""
    import torch

    settings = RenderSettings(prompt="mara walks", steps=steps, seed=0, width=size, height=size)
    plan = RenderPlan(settings, 1001, frames, Fraction(24), fake_version(1, base, "base"),
                      [(fake_version(2, adapter, "adapter"), 1.0)], None)
    clear_cache()
    render_frames(plan, tmp / "warm")  # load + first adapter outside the timing, as a worker would have
    started = time.perf_counter()
    render_frames(plan, tmp / "backlot")
    backlot = frames / (time.perf_counter() - started)
    same = all((tmp / "warm" / "frames" / f.name).read_bytes() == f.read_bytes()
               for f in (tmp / "backlot" / "frames").iterdir())
    loaded = load_pipeline(plan.base_model.content_hash, base)
    common = dict(prompt=settings.prompt, num_inference_steps=settings.steps, guidance_scale=settings.guidance_scale)
    started = time.perf_counter()
    previous = None
    for index in range(frames):
        generator = torch.Generator().manual_seed(settings.seed + index)
        if previous is None:
            previous = loaded.text2img(height=size, width=size, generator=generator, **common).images[0]
        else:
            previous = loaded.img2img(image=previous, strength=settings.frame_strength, generator=generator,
                                      **common).images[0]
    direct = frames / (time.perf_counter() - started)
    return backlot, direct, same


def main() -> None:
    parser = argparse.ArgumentParser(description="generation benchmark on the tiny model")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--swaps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions; the median is shown")
    parser.add_argument("--size", choices=("tiny", "sd15"), default="tiny",
                        help="tiny: the offline test model at 64x64; sd15: SD 1.5's shapes at 512x512")
    parser.add_argument("--render-steps", type=int, default=8)
    args = parser.parse_args()
    size = 64 if args.size == "tiny" else 512
    quiet_libraries()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        started = time.perf_counter()
        base = build_tiny_pipeline(tmp / "tiny", seed=0) if args.size == "tiny" else build_sd15_sized(tmp / "sd15")
        print(f"built the {args.size} model in {time.perf_counter() - started:.1f} s", flush=True)
        rng = np.random.default_rng(0)
        images = []
        for i in range(4):
            path = tmp / f"art{i}.png"
            Image.fromarray((rng.random((size, size, 3)) * 255).astype("uint8")).save(path)
            images.append(path)
        adapters = [run_training(base, images[:2], ["a", "b"], TrainSettings(steps=5, seed=s, resolution=size),
                                 tmp / f"ad{s}").folder for s in (1, 2)]
        # Interleaved rounds, median of each side: the machine is shared, so single runs drift.
        rounds = [(bench_training(base, images, args.steps, tmp / f"r{r}", size), bench_swap(base, adapters, args.swaps),
                   bench_render(base, adapters[0], args.frames, tmp / f"r{r}", size, args.render_steps))
                  for r in range(args.rounds)]
        backlot_sps, plain_sps = (median(r[0][i] for r in rounds) for i in (0, 1))
        hot, rebuild = (median(r[1][i] for r in rounds) for i in (0, 1))
        backlot_fps, direct_fps = (median(r[2][i] for r in rounds) for i in (0, 1))
    device = pick_device()
    print(f"\ngeneration on the {args.size} model at {size}x{size}, {device.device_class}, {device.threads} torch threads, "
          f"median of {args.rounds} interleaved rounds")
    print(f"{'measure':<34} {'backlot':>12} {'baseline':>12} {'ratio':>8}  goal")
    print(f"{'(a) LoRA training steps/s':<34} {backlot_sps:>12.2f} {plain_sps:>12.2f} {backlot_sps / plain_sps:>8.2f}  >= 1.0")
    print(f"{'(b) adapter switch ms':<34} {hot * 1000:>12.2f} {rebuild * 1000:>12.2f} {rebuild / hot:>8.1f}  >= 10x faster")
    print(f"{'(c) render frames/s':<34} {backlot_fps:>12.2f} {direct_fps:>12.2f} {backlot_fps / direct_fps:>8.2f}  >= 0.95")
    print(f"same bytes from two renders of one recipe: {all(r[2][2] for r in rounds)}")


if __name__ == "__main__":
    main()
