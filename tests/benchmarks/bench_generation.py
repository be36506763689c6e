"""Benchmark: generation on the tiny model, Backlot side by side with plain diffusers.

    .venv/bin/python -m tests.benchmarks.bench_generation [--steps 40] [--frames 24] [--swaps 20]
    .venv/bin/python -m tests.benchmarks.bench_generation --families sd,animatediff,sdxl,flux,wan,ltx [--steps 10 ...]
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

`--families` runs (a)-(c) for each model family's tiny stand-in, side by side in one run:
the plain training loop is written per family the way diffusers' examples write it (SD and
SDXL text-to-image LoRA, Flux DreamBooth LoRA: VAE and text encoders inside the loop, Flux
with logit-normal timestep sampling), the direct render calls each family's pipelines for
the same frames (and the frames are compared with Backlot's).
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


def fake_version(vid: int, folder: Path, kind: str, family: str = "sd") -> VersionRecord:
    """A record pointing at a folder, so the renderer runs without a database (location metadata)."""
    import datetime

    return VersionRecord(vid, f"bench/{kind}@{vid}", "bench", kind, kind, 1, "approved", f"{vid:064x}", "x", "bench",
                         datetime.datetime.now(), {"location": str(folder), "family": family}, None, None)


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


# --- per family (--families) ------------------------------------------------------------------

def plain_family_training(family: str, base: Path, images: list[Path], captions: list[str],
                          settings: TrainSettings) -> float:
    """A family's LoRA loop the way diffusers' examples write it: images through the VAE and
    captions through the text encoders inside the loop. Returns seconds for settings.steps."""
    import diffusers
    import torch
    import torch.nn.functional as F
    from diffusers.training_utils import compute_density_for_timestep_sampling, compute_loss_weighting_for_sd3
    from peft import LoraConfig

    from backlot.generation.families import get_family

    fam = get_family(family)
    device = pick_device().name
    pipe = getattr(diffusers, fam.text_class).from_pretrained(base, local_files_only=True)
    for module in pipe.components.values():
        if isinstance(module, torch.nn.Module):
            module.requires_grad_(False)
            module.to(device)
    denoiser = getattr(pipe, fam.denoiser_name)
    torch.manual_seed(settings.seed)
    targets = fam.lora_target_modules
    denoiser.add_adapter(LoraConfig(r=settings.rank, lora_alpha=settings.rank, init_lora_weights="gaussian",
                                    target_modules=targets if isinstance(targets, str) else list(targets)))
    optimizer = torch.optim.AdamW([p for p in denoiser.parameters() if p.requires_grad], lr=settings.lr)
    pixels = torch.stack([torch.from_numpy(np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) / 127.5 - 1)
                          .permute(2, 0, 1) for p in images]).to(device)
    noise_scheduler = diffusers.DDPMScheduler.from_config(pipe.scheduler.config) if family == "sdxl" else pipe.scheduler
    batch = settings.batch_size

    def step_loss(index):
        prompts = [captions[i] for i in index.tolist()]
        if family in ("wan", "ltx"):
            return plain_video_loss(family, pipe, pixels[index], prompts, noise_scheduler, device)
        if family == "flux":
            latents = pipe.vae.encode(pixels[index]).latent_dist.sample()
            latents = (latents - pipe.vae.config.shift_factor) * pipe.vae.config.scaling_factor
            embeds, pooled, text_ids = pipe.encode_prompt(prompts, prompt_2=None, device=device,
                                                          max_sequence_length=pipe.tokenizer_2.model_max_length)
            b, c, h, w = latents.shape
            image_ids = pipe._prepare_latent_image_ids(b, h // 2, w // 2, device, latents.dtype)
            noise = torch.randn_like(latents)
            u = compute_density_for_timestep_sampling("logit_normal", b, logit_mean=0.0, logit_std=1.0)
            indices = (u * noise_scheduler.config.num_train_timesteps).long()
            timesteps = noise_scheduler.timesteps[indices].to(device)
            sigmas = noise_scheduler.sigmas[indices].to(device).reshape(-1, 1, 1, 1)
            noisy = (1 - sigmas) * latents + sigmas * noise
            packed = pipe._pack_latents(noisy, b, c, h, w)
            guidance = torch.full((b,), 3.5, device=device)
            pred = pipe.transformer(hidden_states=packed, timestep=timesteps / 1000, guidance=guidance,
                                    pooled_projections=pooled, encoder_hidden_states=embeds, txt_ids=text_ids,
                                    img_ids=image_ids, return_dict=False)[0]
            pred = pipe._unpack_latents(pred, h * pipe.vae_scale_factor, w * pipe.vae_scale_factor,
                                        pipe.vae_scale_factor)
            weighting = compute_loss_weighting_for_sd3("logit_normal", sigmas)
            return torch.mean((weighting * (pred.float() - (noise - latents).float()) ** 2).reshape(b, -1), 1).mean()
        latents = pipe.vae.encode(pixels[index]).latent_dist.sample() * pipe.vae.config.scaling_factor
        if family == "animatediff":
            latents = latents.unsqueeze(2)
        noise = torch.randn_like(latents)
        timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (batch,), device=device)
        noisy = noise_scheduler.add_noise(latents, noise, timesteps)
        if family == "sdxl":
            embeds, _, pooled, _ = pipe.encode_prompt(prompts, device=device, do_classifier_free_guidance=False)
            size = pixels.shape[-1]
            time_ids = torch.tensor([[size, size, 0, 0, size, size]] * batch, device=device, dtype=latents.dtype)
            pred = pipe.unet(noisy, timesteps, embeds, added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids}).sample
        else:
            ids = pipe.tokenizer(prompts, padding="max_length", truncation=True, max_length=pipe.tokenizer.model_max_length,
                                 return_tensors="pt").input_ids.to(device)
            pred = pipe.unet(noisy, timesteps, pipe.text_encoder(ids)[0]).sample
        return F.mse_loss(pred.float(), noise.float())

    ticks = []
    for _ in range(settings.steps):
        loss = step_loss(torch.randint(0, len(images), (batch,)))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        _sync()
        ticks.append(time.perf_counter())
    return (ticks[-1] - ticks[0]) * settings.steps / (settings.steps - 1)  # steps 2..N, as Backlot's side


def direct_family_frames(family: str, loaded, settings: RenderSettings, frames: int) -> list:
    """The frames a render makes, by calling the family's diffusers pipelines directly."""
    import torch

    from backlot.generation.families import get_family

    args = get_family(family).call_args(loaded, settings)
    if family in ("wan", "ltx"):
        return direct_video_frames(family, loaded, settings, frames, args)
    s, out, previous = settings, [], None
    if family == "animatediff":
        from backlot.generation.families.animatediff import VIDEO_WINDOW

        for window, start in enumerate(range(0, frames, VIDEO_WINDOW)):
            count = min(VIDEO_WINDOW, frames - start)
            generator = torch.Generator().manual_seed(s.seed + window)
            if previous is None:
                clip = loaded.text2img(num_frames=count, height=s.height, width=s.width, generator=generator, **args)
            else:
                clip = loaded.img2img(video=[previous] * count, strength=s.frame_strength, generator=generator, **args)
            out += clip.frames[0][:count]
            previous = out[-1]
        return out
    size = dict(height=s.height, width=s.width) if family == "flux" else {}
    for index in range(frames):
        generator = torch.Generator().manual_seed(s.seed + index)
        if previous is None:
            previous = loaded.text2img(height=s.height, width=s.width, generator=generator, **args).images[0]
        else:
            previous = loaded.img2img(image=previous, strength=s.frame_strength, generator=generator, **size,
                                      **args).images[0]
        out.append(previous)
    return out


def plain_video_loss(family: str, pipe, pixels, prompts: list[str], scheduler, device: str):
    """Wan / LTX-Video, written plainly: stills as one-frame videos through the VAE and captions
    through the text encoder every step; flow matching with logit-normal timesteps and SD3
    weighting (diffusers' SD3/Flux LoRA examples); LTX latents packed into tokens."""
    import torch
    from diffusers.training_utils import compute_density_for_timestep_sampling, compute_loss_weighting_for_sd3

    latents = pipe.vae.encode(pixels.unsqueeze(2)).latent_dist.sample()
    tokens = min(pipe.tokenizer.model_max_length, 512 if family == "wan" else 256)
    if family == "wan":
        shape = (1, pipe.vae.config.z_dim, 1, 1, 1)
        mean = torch.tensor(pipe.vae.config.latents_mean).view(shape).to(latents)
        std = torch.tensor(pipe.vae.config.latents_std).view(shape).to(latents)
        latents = (latents - mean) / std
        embeds, _ = pipe.encode_prompt(prompts, do_classifier_free_guidance=False, max_sequence_length=tokens,
                                       device=device)
    else:
        latents = pipe._normalize_latents(latents, pipe.vae.latents_mean, pipe.vae.latents_std,
                                          pipe.vae.config.scaling_factor)
        embeds, mask, _, _ = pipe.encode_prompt(prompts, do_classifier_free_guidance=False,
                                                max_sequence_length=tokens, device=device)
    b, _, f, h, w = latents.shape
    noise = torch.randn_like(latents)
    u = compute_density_for_timestep_sampling("logit_normal", b, logit_mean=0.0, logit_std=1.0)
    indices = (u * scheduler.config.num_train_timesteps).long()
    timesteps = scheduler.timesteps[indices].to(device)
    sigmas = scheduler.sigmas[indices].to(device).reshape(-1, 1, 1, 1, 1)
    noisy, target = (1 - sigmas) * latents + sigmas * noise, noise - latents
    if family == "wan":
        pred = pipe.transformer(hidden_states=noisy, timestep=timesteps, encoder_hidden_states=embeds,
                                return_dict=False)[0]
    else:
        p, pt = pipe.transformer_spatial_patch_size, pipe.transformer_temporal_patch_size
        ratio_s = pipe.vae_spatial_compression_ratio
        pred = pipe.transformer(hidden_states=pipe._pack_latents(noisy, p, pt), timestep=timesteps,
                                encoder_hidden_states=embeds, encoder_attention_mask=mask, num_frames=f, height=h,
                                width=w, rope_interpolation_scale=(pipe.vae_temporal_compression_ratio / 25, ratio_s,
                                                                   ratio_s), return_dict=False)[0]
        target = pipe._pack_latents(target, p, pt)
    weighting = compute_loss_weighting_for_sd3("logit_normal", sigmas).reshape(-1, *([1] * (pred.ndim - 1)))
    return torch.mean((weighting * (pred.float() - target.float()) ** 2).reshape(b, -1), 1).mean()


def direct_video_frames(family: str, loaded, settings: RenderSettings, frames: int, args: dict) -> list:
    """Wan / LTX-Video called directly: clips of the native length, each after the first
    continuing from the last frame kept (Wan image-to-video, LTX a conditioning frame at 0)
    and dropping its first frame; clip c with seed + c."""
    import torch
    from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

    s, out, previous, length, clip_index = settings, [], None, loaded.extra["clip_frames"], 0
    while len(out) < frames:
        generator = torch.Generator().manual_seed(s.seed + clip_index)
        clip_index += 1
        common = dict(num_frames=length, height=s.height, width=s.width, generator=generator, output_type="pil", **args)
        if family == "wan" and previous is None:
            clip = loaded.text2img(**common).frames[0]
        elif family == "wan":
            clip = loaded.img2img(image=previous, **common).frames[0][1:]
        else:
            conditions = None if previous is None else [LTXVideoCondition(image=previous, frame_index=0, strength=1.0)]
            clip = loaded.text2img(conditions=conditions, frame_rate=24.0, **common).frames[0]
            clip = clip if previous is None else clip[1:]
        out += clip[: frames - len(out)]
        previous = out[-1]
    return out


def bench_family(family: str, tmp: Path, steps: int, frames: int, swaps: int, render_steps: int,
                 rounds: int = 3) -> dict:
    """One family's (a)-(c): the two sides of each timed back to back, `rounds` interleaved
    rounds, the median of each side (the machine is shared, so single runs drift)."""
    import diffusers

    from backlot.generation.families import get_family

    fam = get_family(family)
    base = build_tiny_pipeline(tmp / family, seed=0, family=family)
    rng = np.random.default_rng(0)
    images = []
    for i in range(4):
        path = tmp / f"{family}_art{i}.png"
        Image.fromarray((rng.random((64, 64, 3)) * 255).astype("uint8")).save(path)
        images.append(path)
    captions = ["mara walks", "a red door", "the harbour", "mara runs"]
    adapters = [run_training(base, images[:2], captions[:2], TrainSettings(steps=2, seed=s), tmp / f"{family}_ad{s}",
                             family=family).folder for s in (1, 2)]
    settings = TrainSettings(steps=steps, rank=4, lr=1e-3, seed=0)
    render = RenderSettings(prompt="mara walks", steps=render_steps, seed=0)
    plan = RenderPlan(render, 1001, frames, Fraction(24), fake_version(1, base, "base", family),
                      [(fake_version(2, adapters[0], "adapter", family), 1.0)], None)
    device = pick_device()
    results = {"train": [], "swap": [], "render": [], "same": True}
    for r in range(rounds):
        # (a) training
        ticks = []  # when each step finished: steps 2..N timed (step 1 pays for warm-up; encoders run before it)
        run_training(base, images, captions, settings, tmp / f"{family}_lora{r}",
                     lambda _step, _loss: ticks.append(time.perf_counter()), family=family)
        results["train"].append(((len(ticks) - 1) / (ticks[-1] - ticks[0]),
                                 steps / plain_family_training(family, base, images, captions, settings)))
        # (b) adapter switch
        clear_cache()
        loaded = load_pipeline(f"bench-{family}", base, family=family)
        uses = [(f"lora_{i}", folder, 1.0) for i, folder in enumerate(adapters)]
        for use in uses:
            activate_adapters(loaded, [use])
        started = time.perf_counter()
        for i in range(swaps):
            activate_adapters(loaded, [uses[i % len(uses)]])
        hot = (time.perf_counter() - started) / swaps
        rebuilds = max(2, swaps // 8)
        started = time.perf_counter()
        for i in range(rebuilds):
            pipe = getattr(diffusers, fam.text_class).from_pretrained(base, dtype=device.torch_dtype(),
                                                                      local_files_only=True)
            pipe.to(device.name)
            pipe.load_lora_weights(str(adapters[i % 2]), weight_name=LORA_WEIGHTS, adapter_name="a")
        results["swap"].append((hot, (time.perf_counter() - started) / rebuilds))
        # (c) render
        clear_cache()
        render_frames(plan, tmp / f"{family}_warm{r}")  # load + first adapter outside the timing, as a worker would
        started = time.perf_counter()
        render_frames(plan, tmp / f"{family}_backlot{r}")
        backlot_fps = frames / (time.perf_counter() - started)
        loaded = load_pipeline(plan.base_model.content_hash, base, family=family)
        started = time.perf_counter()
        direct = direct_family_frames(family, loaded, render, frames)
        results["render"].append((backlot_fps, frames / (time.perf_counter() - started)))
        ours = sorted((tmp / f"{family}_backlot{r}" / "frames").iterdir())
        results["same"] &= len(ours) == len(direct) and all(
            np.array_equal(np.asarray(Image.open(p).convert("RGB")), np.asarray(img.convert("RGB")))
            for p, img in zip(ours, direct))
    return {key: tuple(median(pair[i] for pair in results[key]) for i in (0, 1)) for key in ("train", "swap", "render")
            } | {"same": results["same"]}


def main_families(families: list[str], args) -> None:
    quiet_libraries()
    results = {}
    with tempfile.TemporaryDirectory() as name:
        for family in families:
            started = time.perf_counter()
            results[family] = bench_family(family, Path(name), args.steps, args.frames, args.swaps, args.render_steps,
                                           args.rounds)
            print(f"{family}: {time.perf_counter() - started:.0f} s", flush=True)
    device = pick_device()
    print(f"\nmodel families on their tiny stand-ins at 64x64, {device.device_class}, {device.threads} torch threads; "
          f"{args.steps} training steps, {args.frames} frames x {args.render_steps} steps, {args.swaps} switches; "
          f"median of {args.rounds} interleaved rounds")
    print(f"{'family':<12} {'train steps/s':>14} {'plain':>8} {'ratio':>6} | {'render fps':>10} {'direct':>8} "
          f"{'ratio':>6} {'same':>5} | {'switch ms':>9} {'rebuild ms':>10} {'x':>6}")
    for family, r in results.items():
        (bs, ps), (hot, rb), (bf, df) = r["train"], r["swap"], r["render"]
        print(f"{family:<12} {bs:>14.2f} {ps:>8.2f} {bs / ps:>6.2f} | {bf:>10.2f} {df:>8.2f} {bf / df:>6.2f} "
              f"{str(r['same']):>5} | {hot * 1000:>9.2f} {rb * 1000:>10.1f} {rb / hot:>6.0f}")
    print("goals: training ratio >= 1.0, render ratio >= 0.95, switch >= 10x faster than a rebuild")


def main() -> None:
    parser = argparse.ArgumentParser(description="generation benchmark on the tiny model")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--swaps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions; the median is shown")
    parser.add_argument("--size", choices=("tiny", "sd15"), default="tiny",
                        help="tiny: the offline test model at 64x64; sd15: SD 1.5's shapes at 512x512")
    parser.add_argument("--render-steps", type=int, default=8)
    parser.add_argument("--families", default=None,
                        help="comma-separated families (sd,animatediff,sdxl,flux,...): per-family table instead")
    args = parser.parse_args()
    if args.families:
        main_families(args.families.split(","), args)
        return
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
