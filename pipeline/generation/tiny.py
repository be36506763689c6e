"""Tiny stand-in pipelines built offline from config with seeded random weights.

Each family builds its own (families/*.py, `build_tiny`); this module keeps the shared
byte-level vocabulary and the older entry point. A stand-in uses the same diffusers classes
and code paths as real weights, small enough to train and render on a CPU in
seconds. Its pictures are noise-like; its value is that every path Backlot runs on real
models runs on it too, reproducibly. The same seed writes the same bytes.
"""

from __future__ import annotations

from pathlib import Path

TINY_IMAGE_SIZE = 64
MAX_TOKENS = 77


def byte_level_vocab() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """CLIP's byte-to-unicode alphabet as a vocabulary with no merges: every byte is a token."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    chars = [chr(c) for c in codes]
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    return {token: index for index, token in enumerate(tokens)}, []


KINDS = ("image", "animatediff")  # the names build_tiny_pipeline took before families; "image" is "sd"


def build_tiny_pipeline(folder: Path, seed: int = 0, kind: str = "image", family: str | None = None) -> Path:
    """Build and save a family's tiny stand-in under `folder` (created); returns the folder.

    `family` names it (sd, animatediff, sdxl, flux, wan, ltx); `kind` is the older spelling
    ("image" for sd, "animatediff"). The same seed writes the same bytes.
    """
    from backlot.generation.device import quiet_libraries
    from backlot.generation.families import get_family

    quiet_libraries()
    return get_family(family or {"image": "sd"}.get(kind, kind)).build_tiny(folder, seed)
