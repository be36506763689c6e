"""Base pipelines loaded once per process, with adapters hot-swapped by name.

A worker renders many shots with one base model and a handful of adapters. Loading the
base is the expensive part, so pipelines are cached by the base model's content hash;
adapters are loaded into the cached pipeline once under their version's name and then
switched with `set_adapters` — never by reloading the base. What is loaded, and how, is
the base model's family's business (families/): this module only caches and switches.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from backlot.generation.device import Device, pick_device, quiet_libraries
from backlot.generation.families import detect_family, get_family
from backlot.generation.families.base import LORA_WEIGHTS, LoadedPipeline

_CACHE: dict[str, LoadedPipeline] = {}


def load_pipeline(content_hash: str, folder: Path, device: Device | None = None,
                  family: str | None = None) -> LoadedPipeline:
    """The pipelines of a base model version, loaded on first use and kept for the process.

    `family` is the one recorded on the version (detected from model_index.json when not given).
    BACKLOT_NO_PIPELINE_CACHE=1 loads it every time (the naive design, for the benchmark)."""
    if os.environ.get("BACKLOT_NO_PIPELINE_CACHE") == "1":
        _CACHE.clear()
    if content_hash in _CACHE:
        return _CACHE[content_hash]
    quiet_libraries()
    chosen = get_family(family) if family else detect_family(json.loads((Path(folder) / "model_index.json").read_text()))
    _CACHE[content_hash] = chosen.load(Path(folder), device or pick_device())
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


__all__ = ["LORA_WEIGHTS", "LoadedPipeline", "load_pipeline", "activate_adapters", "clear_cache"]
