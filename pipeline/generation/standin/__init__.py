"""The learned stand-in base model: a small SD-family pipeline trained in-process on a
procedural film world (world.py), built once per seed and cached (learn.py).

`build_learned_pipeline(folder, seed=0) -> Path` is the entry point (torch is imported only
when it runs).
"""

from __future__ import annotations

from pathlib import Path


def build_learned_pipeline(folder: Path, seed: int = 0, **options) -> Path:
    from backlot.generation.standin.learn import build_learned_pipeline as build

    return build(folder, seed=seed, **options)


__all__ = ["build_learned_pipeline"]
