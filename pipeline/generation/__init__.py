"""Generation: base models, LoRA adapters trained on concept art, shot rendering, reproduction.

torch, diffusers, transformers and peft are imported only when a function here runs, so
`import backlot` (the tracker, editorial sync, integrations) never loads them.
"""

from __future__ import annotations

import importlib
from typing import Any

from backlot.generation.device import let_idle_threads_sleep

let_idle_threads_sleep()  # before anything here imports torch (see device.py)

_EXPORTS = {
    "register_model": "models", "build_and_register_tiny": "models", "check_diffusers_folder": "models",
    "version_folder": "models", "build_tiny_pipeline": "tiny",
    "TrainSettings": "training", "train_adapter": "training", "run_training": "training",
    "AdapterUse": "rendering", "RenderSettings": "rendering", "RenderPlan": "rendering", "plan_render": "rendering",
    "render_shot": "rendering", "render_frames": "rendering", "publish_render": "rendering",
    "verify_version": "reproduce", "rerender_version": "reproduce", "retrain_adapter": "reproduce", "VerifyResult": "reproduce",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'backlot.generation' has no attribute {name!r}")
    return getattr(importlib.import_module(f"backlot.generation.{_EXPORTS[name]}"), name)
