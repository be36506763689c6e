"""The learned stand-in: a small Stable-Diffusion-family pipeline trained in-process on the world.

Three parts, chosen to keep the build short (about 70 s on two cores of a quiet machine):

- The tokenizer is tiny.py's byte-level CLIP vocabulary plus BPE merges that make each of the
  world's words ("mara", "left", "dusk", ...) one token, so the text encoder does not have
  to learn to spell; any other text still tokenises, byte by byte.
- The VAE is not trained: its weights are set so that it is (to float precision) 4x4 average
  pooling into a 16x16 latent and nearest-neighbour upsampling back. Every resnet and
  attention block is an identity (its last projection is zero, its residual carries the
  signal); the GroupNorm before each output convolution sees the signal next to its
  negation and a large constant, so it only divides by a known scale; SiLU runs far on its
  linear side. A learned VAE cost most of the time budget; this one costs nothing and loses
  only detail finer than 4 pixels, which the world does not have.
- The UNet and the text encoder are trained together on the world's pictures and captions
  (captions dropped 10% of the time, for classifier-free guidance; half the noise levels
  drawn from those 6- and 8-step DDIM renders visit), from one seeded generator, and the
  moving average of the weights is what is saved. The objective is v-prediction on betas
  rescaled to zero terminal SNR, sampled with trailing timesteps (Lin et al., "Common
  Diffusion Noise Schedules and Sample Steps are Flawed"): with epsilon-prediction on the
  usual schedule the first step still sees some of the picture in training but none in a
  render, and renders came out at one mean brightness (night too bright) with the figure
  where the seed, not the prompt, put it. Token embeddings start spread out (std 1, not
  CLIP's 0.02): with whole-word tokens cross-attention can tell words apart from step one.

The same seed, configuration and thread count write the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from backlot.generation.standin import world

RECIPE_NAME = "standin.json"
LATENT_DOWN = 4  # 64x64 pictures, 16x16 latents


@dataclass(frozen=True)
class LearnConfig:
    seed: int = 0
    steps: int = 800  # fewer lose placement: "left" and "right" are learned last
    batch_size: int = 16
    lr: float = 2e-3
    jittered: int = 1024  # jittered pictures beside the canonical ones
    caption_dropout: float = 0.1
    threads: int = 1  # torch threads of each build worker
    workers: int = 2  # processes the batch is split across (part of the bytes: kept fixed, not the core count)
    unet_channels: tuple[int, ...] = (32, 64, 64)
    text_width: int = 32
    token_scale: float = 1.0  # spread of the initial token embeddings (CLIP's own is 0.02)
    focus: float = 0.5  # share of draws at the noise levels 6- and 8-step DDIM renders visit
    prediction: str = "v_prediction"  # the scheduler's prediction_type
    zero_snr: bool = True  # betas rescaled to zero terminal SNR, trailing timestep spacing
    ema: float = 0.99  # decay of the moving average of the weights that is saved (0: none)
    max_tokens: int = 16  # the tokenizer's length: world captions are at most 11 tokens
    heads: int = 2  # attention heads in the UNet
    scaling: float = 2.0  # the VAE's scaling_factor: pooled pictures in [-1, 1] have a spread of ~0.5
    version: int = 2  # bump when the world or the training changes bytes

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def build_tokenizer(max_tokens: int = 77):
    """tiny.py's byte-level CLIP tokenizer with merges that make each world word one token."""
    from transformers import CLIPTokenizer

    from backlot.generation.tiny import byte_level_vocab

    vocab, _ = byte_level_vocab()
    merges: list[tuple[str, str]] = []
    for word in world.WORDS:
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        joined = parts[0]
        for part in parts[1:]:
            if (joined, part) not in merges:
                merges.append((joined, part))
            joined += part
            vocab.setdefault(joined, len(vocab))
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=max_tokens)
    for word in world.WORDS:  # a merge of one word must not split another
        ids = tokenizer(word, add_special_tokens=False).input_ids
        if len(ids) != 1:
            raise AssertionError(f"world word {word!r} is not one token: {tokenizer.convert_ids_to_tokens(ids)}")
    return tokenizer


def build_pooling_vae(width: int = 8, constant: float = 100.0, offset: float = 20.0):
    """An AutoencoderKL whose weights make it 4x4 average pooling / nearest upsampling."""
    import torch
    from diffusers import AutoencoderKL

    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(width,) * 3,
                        layers_per_block=1, down_block_types=("DownEncoderBlock2D",) * 3,
                        up_block_types=("UpDecoderBlock2D",) * 3, norm_num_groups=1, sample_size=world.SIZE)
    with torch.no_grad():
        for p in vae.parameters():
            p.zero_()
        for coder in (vae.encoder, vae.decoder):
            _signal_in(coder.conv_in, constant)
            blocks = [coder.mid_block] + list(getattr(coder, "down_blocks", None) or coder.up_blocks)
            for block in blocks:
                for resnet in block.resnets:
                    _identity_norms(resnet)  # conv2 stays zero: the block adds nothing
                for attn in getattr(block, "attentions", []) or []:
                    attn.group_norm.weight.fill_(1.0)
                for sampler in (getattr(block, "downsamplers", None) or []):
                    _average_2x2(sampler.conv)
                for sampler in (getattr(block, "upsamplers", None) or []):
                    _centre_tap(sampler.conv)
            coder.conv_norm_out.weight.fill_(constant / 2)  # undo the division by the known scale
            coder.conv_norm_out.bias.fill_(offset)  # SiLU's nearly linear side
        _signal_out(vae.encoder.conv_out, 4, logvar=-30.0)
        _signal_out(vae.decoder.conv_out, 3)
        for conv in (vae.quant_conv, vae.post_quant_conv):
            conv.weight[:, :, 0, 0] = torch.eye(conv.weight.shape[0])
    return vae


def _signal_in(conv, constant: float) -> None:
    """Channels [x, -x, c, -c, 0...]: GroupNorm's mean is then 0 and its scale ~ c/2, whatever x is."""
    colours = min(conv.in_channels, 3)
    for k in range(colours):
        conv.weight[k, k, 1, 1] = 1.0
        conv.weight[colours + k, k, 1, 1] = -1.0
    conv.bias[2 * colours] = constant
    conv.bias[2 * colours + 1] = -constant


def _signal_out(conv, channels: int, logvar: float | None = None) -> None:
    """(x + b) - (-x + b) = 2x: the offset cancels."""
    for k in range(3):
        conv.weight[k, k, 1, 1] = 0.5
        conv.weight[k, 3 + k, 1, 1] = -0.5
    if logvar is not None:
        conv.bias[channels:] = logvar  # the posterior's spread: exp(-15), so sampling is the mean


def _identity_norms(resnet) -> None:
    resnet.norm1.weight.fill_(1.0)
    resnet.norm2.weight.fill_(1.0)


def _average_2x2(conv) -> None:
    for k in range(conv.out_channels):
        conv.weight[k, k, 0:2, 0:2] = 0.25


def _centre_tap(conv) -> None:
    for k in range(conv.out_channels):
        conv.weight[k, k, 1, 1] = 1.0


def build_models(config: LearnConfig):
    """(tokenizer, text encoder, UNet, VAE, scheduler), untrained, from the config's seed."""
    import torch
    from diffusers import DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = build_tokenizer(config.max_tokens)
    torch.manual_seed(config.seed)
    width = config.text_width
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer.get_vocab()), hidden_size=width, intermediate_size=2 * width, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=config.max_tokens, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    with torch.no_grad():  # word tokens start far apart, so cross-attention can tell them apart from step one
        text_encoder.get_input_embeddings().weight.normal_(0.0, config.token_scale)
    channels = tuple(config.unet_channels)
    unet = UNet2DConditionModel(
        sample_size=world.SIZE // LATENT_DOWN, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=channels, down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (len(channels) - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (len(channels) - 1) + ("UpBlock2D",),
        cross_attention_dim=width, norm_num_groups=8, attention_head_dim=config.heads)
    vae = build_pooling_vae()
    vae.register_to_config(scaling_factor=config.scaling)
    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085,
                              beta_end=0.012, clip_sample=False, set_alpha_to_one=False, steps_offset=1,
                              prediction_type=config.prediction, rescale_betas_zero_snr=config.zero_snr,
                              timestep_spacing="trailing" if config.zero_snr else "leading")
    return tokenizer, text_encoder, unet, vae, scheduler


def train(config: LearnConfig, progress: Callable[[int, float], None] | None = None):
    """Train the UNet and text encoder on the world; returns the models and the loss curve.

    With `config.workers` > 1 the batch is split across that many processes (this one and
    spawned helpers), which average their gradients through shared memory: on these tiny
    kernels a second torch thread makes a step slower; a second process, with half the batch
    each, makes the build about 1.26x faster on two cores."""
    from backlot.errors import InvalidInputError

    if config.workers < 1 or config.batch_size % config.workers:
        raise InvalidInputError(f"the stand-in's batch of {config.batch_size} does not split across "
                                f"{config.workers} build workers: give a worker count that divides it")
    models = build_models(config)
    if config.workers == 1:
        return models, _fit(config, models, progress)
    with _Helpers(config, _trainable(models)) as exchange:
        losses = _fit(config, models, progress, exchange)
    return models, losses


def _trainable(models) -> list:
    _, text_encoder, unet, _, _ = models
    return list(unet.parameters()) + list(text_encoder.parameters())


def _fit(config: LearnConfig, models, progress=None, exchange: "_GradientExchange | None" = None) -> list[float]:
    """The training loop of one worker: every worker draws the whole batch from the same seeded
    generator and trains on its own slice of it."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from backlot.generation.families.base import prediction_target

    tokenizer, text_encoder, unet, vae, scheduler = models
    images, captions = world.training_set(config.seed, config.jittered)
    pixels = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        latents = vae.encode(pixels).latent_dist.mean * config.scaling
    texts = sorted(set(captions)) + [""]
    tokens = tokenizer(texts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                       return_tensors="pt").input_ids
    text_index = torch.tensor([texts.index(c) for c in captions])
    empty = len(texts) - 1
    generator = torch.Generator().manual_seed(config.seed)
    params = _trainable(models)
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0, fused=True)
    warmup = max(1, config.steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup) * (0.5 + 0.5 * np.cos(np.pi * step / config.steps)))
    grid = torch.tensor(sorted({int(t) for n in (6, 8) for t in _render_timesteps(scheduler, n)}))
    share = config.batch_size // config.workers
    mine = slice(exchange.rank * share, (exchange.rank + 1) * share) if exchange else slice(None)
    losses = []
    shadow = [p.detach().clone() for p in params] if config.ema else None
    if exchange:
        exchange.bind(params)
    unet.train()
    text_encoder.train()
    for step in range(config.steps):
        pick = torch.randint(0, len(latents), (config.batch_size,), generator=generator)
        which = text_index[pick].clone()
        which[torch.rand(config.batch_size, generator=generator) < config.caption_dropout] = empty
        noise = torch.randn(latents[pick].shape, generator=generator)
        timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (config.batch_size,), generator=generator)
        focused = torch.rand(config.batch_size, generator=generator) < config.focus
        on_grid = grid[torch.randint(0, len(grid), (config.batch_size,), generator=generator)]
        timesteps = torch.where(focused, on_grid, timesteps)[mine]
        pick, which, noise = pick[mine], which[mine], noise[mine]
        used, inverse = torch.unique(which, return_inverse=True)
        embeddings = text_encoder(tokens[used])[0][inverse]
        noisy = scheduler.add_noise(latents[pick], noise, timesteps)
        target = prediction_target(scheduler, latents[pick], noise, timesteps)
        loss = F.mse_loss(unet(noisy, timesteps, embeddings).sample, target)
        loss.backward()
        value = exchange.average(params, loss) if exchange else float(loss.detach())
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=exchange is None)  # bound gradients stay views of shared memory
        if shadow is not None:  # warmed up as diffusers' EMAModel does: early weights count little
            decay = min(config.ema, (1 + step) / (10 + step))
            torch._foreach_lerp_(shadow, [p.detach() for p in params], 1 - decay)
        losses.append(value)
        if progress:
            progress(step + 1, value)
    if shadow is not None:
        with torch.no_grad():
            for p, average in zip(params, shadow):
                p.copy_(average)
    unet.eval()
    text_encoder.eval()
    return losses


class _GradientExchange:
    """Gradients averaged across the build's workers through shared memory, summed in rank
    order by every worker, so all take the same optimizer step and a build's bytes repeat.
    Each parameter's .grad is a view into this worker's buffer, so backward writes there."""

    def __init__(self, rank: int, buffers: list, barrier, timeout: float):
        self.rank, self.buffers, self.barrier, self.timeout = rank, buffers, barrier, timeout

    def bind(self, params) -> None:
        own, offset = self.buffers[self.rank], 0
        for p in params:
            p.grad = own[offset:offset + p.numel()].view_as(p)
            offset += p.numel()

    def average(self, params, loss) -> float:
        own = self.buffers[self.rank]
        own[-1] = loss.detach()
        self._wait()
        total = self.buffers[0].clone()
        for other in self.buffers[1:]:
            total += other
        self._wait()  # every worker has read before any overwrites its own
        own.copy_(total.div_(len(self.buffers)))
        return float(own[-1])

    def _wait(self) -> None:
        import threading

        try:
            self.barrier.wait(self.timeout)
        except threading.BrokenBarrierError:
            raise RuntimeError("a stand-in build worker stopped or stalled; the build is abandoned "
                               "(nothing was cached): run it again") from None


HELPER_TIMEOUT_S = 300.0  # the longest a worker waits for another at one step (startup included)


class _Helpers:
    """The spawned worker processes of one build: started on enter, joined (or killed) on exit,
    and each dies with this process."""

    def __init__(self, config: LearnConfig, params):
        import multiprocessing

        import torch
        import torch.multiprocessing as mp

        if multiprocessing.current_process().daemon:
            from backlot.errors import InvalidInputError

            raise InvalidInputError("the learned stand-in is built with helper processes, which a daemon "
                                    "process (such as a Celery pool worker) cannot start: build it with "
                                    "`backlot model tiny` first; later uses copy the cached build")
        self.config, self.context = config, mp.get_context("spawn")
        size = sum(p.numel() for p in params) + 1  # and the loss
        self.buffers = [torch.zeros(size).share_memory_() for _ in range(config.workers)]
        self.barrier = self.context.Barrier(config.workers)
        self.processes = []

    def __enter__(self) -> _GradientExchange:
        import threading

        for rank in range(1, self.config.workers):
            process = self.context.Process(target=_helper_main, daemon=True, name=f"standin-build-{rank}",
                                           args=(self.config, rank, self.buffers, self.barrier, os.getpid()))
            process.start()
            self.processes.append(process)
        threading.Thread(target=self._watch, name="standin-build-watch", daemon=True).start()
        return _GradientExchange(0, self.buffers, self.barrier, HELPER_TIMEOUT_S)

    def _watch(self) -> None:
        """A helper that fails (say, a script without the `if __name__ == "__main__":` guard
        that spawning needs) breaks the barrier at once, instead of after the timeout."""
        from multiprocessing.connection import wait

        pending = list(self.processes)
        while pending:
            ready = wait([p.sentinel for p in pending])
            for process in [p for p in pending if p.sentinel in ready]:
                pending.remove(process)
                if process.exitcode:
                    self.barrier.abort()
                    return

    def __exit__(self, kind, error, trace) -> None:
        if error is not None:
            self.barrier.abort()
        for process in self.processes:
            process.join(timeout=None if error is None else 5)
            if process.is_alive():
                process.kill()
                process.join()
        failed = [p.name for p in self.processes if p.exitcode]
        if failed and error is None:
            raise RuntimeError(f"stand-in build worker(s) {', '.join(failed)} failed; nothing was cached: run it again")


def _helper_main(config: LearnConfig, rank: int, buffers, barrier, parent: int) -> None:
    """A spawned build worker: the same models from the same seed, its slice of every batch."""
    import signal

    from backlot.processes import die_with_parent

    die_with_parent(parent, signal.SIGKILL, exit_code=1)  # the kernel ends this helper with the build
    from backlot.generation.device import quiet_libraries

    quiet_libraries()
    import torch

    torch.set_num_threads(config.threads)
    torch.use_deterministic_algorithms(True)
    _fit(config, build_models(config), exchange=_GradientExchange(rank, buffers, barrier, HELPER_TIMEOUT_S))


def _render_timesteps(scheduler, steps: int):
    from diffusers import DDIMScheduler

    copy = DDIMScheduler.from_config(scheduler.config)
    copy.set_timesteps(steps)
    return copy.timesteps.tolist()


def build_learned_pipeline(folder: Path, seed: int = 0, config: LearnConfig | None = None,
                           progress: Callable[[int, float], None] | None = None, cache: Path | None = None) -> Path:
    """The learned stand-in as a StableDiffusionPipeline folder at `folder` (created); returns it.

    Built once per seed and configuration and kept under BACKLOT_HOME/cache/standin/ (or
    `cache`); later calls copy the cached folder. BACKLOT_STANDIN_THREADS sets the torch threads
    of each build process (default 1; part of the cache key, since it may change the bytes)."""
    config = config or LearnConfig(seed=seed, threads=_threads())
    cached = cached_pipeline(config, progress, cache)
    if folder.exists() and any(folder.iterdir()):
        from backlot.errors import InvalidInputError

        raise InvalidInputError(f"{folder} exists and is not empty: give a new or empty folder for the stand-in")
    shutil.copytree(cached, folder, dirs_exist_ok=True)
    return folder


def cached_pipeline(config: LearnConfig, progress: Callable[[int, float], None] | None = None,
                    cache: Path | None = None) -> Path:
    """The cached build of `config`, built first when missing (a finished build appears atomically)."""
    from backlot.config import load_settings

    # BACKLOT_STANDIN_CACHE shares one cache between homes (the tests: one build per run).
    root = cache or Path(os.environ.get("BACKLOT_STANDIN_CACHE") or load_settings().home / "cache" / "standin")
    target = root / f"seed{config.seed}-{config.digest()}"
    if (target / RECIPE_NAME).is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_builds(root)
    work = Path(tempfile.mkdtemp(prefix=f".building-{os.getpid()}-", dir=root))
    try:
        write_pipeline(config, work, progress)
        try:
            os.rename(work, target)
        except OSError:  # another process finished the same build first: keep its copy
            if not (target / RECIPE_NAME).is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _remove_abandoned_builds(root: Path) -> None:
    """Working folders of builds whose process is gone (killed mid-build): named by their pid."""
    for work in root.glob(".building-*"):
        pid = work.name.split("-")[1]
        if not pid.isdigit() or not _process_exists(int(pid)):
            shutil.rmtree(work, ignore_errors=True)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's: alive
        return True
    return True


def write_pipeline(config: LearnConfig, folder: Path, progress: Callable[[int, float], None] | None = None) -> dict:
    """Train and save the pipeline into `folder`; returns the build record (also saved there)."""
    from backlot.generation.device import library_versions, quiet_libraries

    quiet_libraries()
    import torch
    from diffusers import StableDiffusionPipeline

    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(config.threads)
    torch.use_deterministic_algorithms(True)
    started, cpu = time.perf_counter(), time.process_time()
    try:
        (tokenizer, text_encoder, unet, vae, scheduler), losses = train(config, progress)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(folder, safe_serialization=True)
    tail = losses[-max(1, len(losses) // 10):]
    record = {"builder": "backlot.standin.v1", "config": asdict(config), "world": world.WORDS,
              "final_loss": round(sum(tail) / len(tail), 6), "versions": library_versions()}
    (folder / RECIPE_NAME).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    # Timings vary run to run, so they stay out of the folder (its bytes are the model's identity).
    record["build_s"], record["build_cpu_s"] = time.perf_counter() - started, time.process_time() - cpu
    return record


def _threads() -> int:
    # One thread by default: the bytes of a build then do not depend on the machine's cores.
    value = os.environ.get("BACKLOT_STANDIN_THREADS", "1")
    if not value.isdigit() or int(value) < 1:
        from backlot.errors import InvalidInputError

        raise InvalidInputError(f"BACKLOT_STANDIN_THREADS={value!r}: give a positive whole number of threads")
    return int(value)
