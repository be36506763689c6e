"""Helpers for work on a whole cut at once (thousands of clips, a hundred thousand objects)."""

from __future__ import annotations

import contextlib
import gc
from typing import Iterator


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pauses Python's cyclic garbage collector for a bulk step.

    A cut's worth of parsed JSON is a hundred thousand containers in no cycle; allocating them
    makes the collector run again and again over everything alive (the parse more than
    doubles). Reference counting still frees them; only cycles wait. Free the bulk inside the
    block, or the collector walks it once it resumes.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
