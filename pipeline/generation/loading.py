"""Base pipelines loaded once per process, with adapters hot-swapped by name.

A worker renders many shots with one base model and a handful of adapters. Loading the
base is the expensive part, so pipelines are cached by the base model's content hash;
adapters are loaded into the cached pipeline once under their version's name and then
switched with `set_adapters` — never by reloading the base.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from backlot.generation.device import Device, pick_device, quiet_libraries

LORA_WEIGHTS = "pytorch_lora_weights.safetensors"


@dataclass
class LoadedPipeline:
    text2img: object  # prompt -> frame(s)
    img2img: object  # frame(s) -> frame(s): img2img, or video-to-video for a video base
    device: Device
    video: bool = False  # an AnimateDiff base: frames come out together
    adapters: set[str] = field(default_factory=set)
    active: tuple[tuple[str, float], ...] | None = None


_CACHE: dict[str, LoadedPipeline] = {}


def load_pipeline(content_hash: str, folder: Path, device: Device | None = None) -> LoadedPipeline:
    """The pipeline of a base model version, loaded on first use and kept for the process.

    BACKLOT_NO_PIPELINE_CACHE=1 loads it every time (the naive design, for the benchmark)."""
    if os.environ.get("BACKLOT_NO_PIPELINE_CACHE") == "1":
        _CACHE.clear()
    if content_hash in _CACHE:
        return _CACHE[content_hash]
    quiet_libraries()
    from diffusers import DiffusionPipeline, StableDiffusionImg2ImgPipeline

    device = device or pick_device()
    text2img = DiffusionPipeline.from_pretrained(folder, dtype=device.torch_dtype(), local_files_only=True)
    text2img.to(device.name)
    text2img.set_progress_bar_config(disable=True)
    if device.compile:
        import torch

        text2img.unet = torch.compile(text2img.unet)
    # The continuation pipeline shares every component (and so every loaded adapter).
    video = type(text2img).__name__ == "AnimateDiffPipeline"
    if video:
        from diffusers import AnimateDiffVideoToVideoPipeline

        img2img = AnimateDiffVideoToVideoPipeline(**text2img.components)
    else:
        img2img = StableDiffusionImg2ImgPipeline(**text2img.components)
    img2img.set_progress_bar_config(disable=True)
    _CACHE[content_hash] = LoadedPipeline(text2img, img2img, device, video)
    return _CACHE[content_hash]


def activate_adapters(loaded: LoadedPipeline, adapters: list[tuple[str, Path, float]]) -> None:
    """Make exactly these (name, folder, weight) adapters active; load the ones not seen yet."""
    pipe = loaded.text2img
    for name, folder, _weight in adapters:
        if name not in loaded.adapters:
            pipe.load_lora_weights(str(folder), weight_name=LORA_WEIGHTS, adapter_name=name)
            loaded.adapters.add(name)
    wanted = tuple((name, weight) for name, _folder, weight in adapters)
    if wanted == loaded.active:
        return
    if wanted:
        pipe.enable_lora()
        pipe.set_adapters([n for n, _ in wanted], adapter_weights=[w for _, w in wanted])
    elif loaded.adapters:
        pipe.disable_lora()
    loaded.active = wanted


def clear_cache() -> None:
    _CACHE.clear()
