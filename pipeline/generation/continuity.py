"""Continuity figures: how much a picture jumps at a cut and from frame to frame inside a shot.

Both are the mean absolute difference of 8-bit RGB values (0 = the same picture, 255 = black
against white), measured on stored frames, so any version can be measured after the fact:

- boundary: the previous shot's last frame against this shot's first frame;
- within: the mean over consecutive frame pairs inside the shot.

Rendering with continuity should make the boundary figure small; without it, the first frame
is drawn afresh from the prompt and the cut jumps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from sqlalchemy.orm import Session

from backlot.storage import Store
from backlot.tracker import VersionRecord, get_version


@dataclass(frozen=True)
class ShotContinuity:
    version: str
    frames: int
    within: float | None  # None for a one-frame shot
    boundary: float | None  # None when nothing came before it
    boundary_from: str | None  # the version whose last frame the boundary is measured against


def mean_abs_difference(a, b) -> float:
    """Mean absolute difference of two same-size pictures (paths or PIL images), 0-255."""
    import numpy as np

    first, second = _pixels(a), _pixels(b)
    if first.shape != second.shape:
        raise ValueError(f"pictures differ in size: {first.shape[1]}x{first.shape[0]} vs {second.shape[1]}x{second.shape[0]}")
    return float(np.abs(first - second).mean())


def frame_to_frame(frames: Sequence) -> float | None:
    """Mean difference over consecutive pairs of `frames` (paths or images); None for fewer than two."""
    if len(frames) < 2:
        return None
    pixels = [_pixels(f) for f in frames]
    return sum(float(abs(a - b).mean()) for a, b in zip(pixels, pixels[1:])) / (len(pixels) - 1)


def frame_paths(version: VersionRecord, store: Store | None = None) -> list[Path]:
    """A render version's frames, in order, as local files."""
    from backlot.generation.models import version_folder

    folder = version_folder(version, store)
    return [folder / p for p in sorted(f.path for f in version.files if f.path.startswith("frames/"))]


def shot_continuity(session: Session, version: VersionRecord, store: Store | None = None,
                    previous: VersionRecord | None = None) -> ShotContinuity:
    """The figures of a `shot_render` version. The boundary is measured against `previous`, else
    the version it continued from (its `continuity` input); without either there is none."""
    frames = frame_paths(version, store)
    if previous is None:
        source = next((i for i in version.inputs if i.role == "continuity"), None)
        previous = get_version(session, source.version_id) if source else None
    boundary = None
    if previous is not None and frames:
        earlier = frame_paths(previous, store)
        boundary = mean_abs_difference(earlier[-1], frames[0]) if earlier else None
    return ShotContinuity(version.ref, len(frames), frame_to_frame(frames), boundary,
                          previous.ref if previous is not None and boundary is not None else None)


def _pixels(picture):
    import numpy as np
    from PIL import Image

    if isinstance(picture, (str, Path)):
        with Image.open(picture) as image:
            return np.asarray(image.convert("RGB"), dtype=np.float32)
    return np.asarray(picture.convert("RGB"), dtype=np.float32)


_FIGURES: dict[tuple[str, str | None], ShotContinuity] = {}


def cached_shot_continuity(session: Session, version: VersionRecord, store: Store | None = None) -> ShotContinuity:
    """`shot_continuity` for the review page: against the version it continued from, else the
    previous shot's current version; kept per (version, neighbour) content, which never changes."""
    previous = None
    if not any(i.role == "continuity" for i in version.inputs):
        previous = _previous_shot(session, version)
    source = next((i for i in version.inputs if i.role == "continuity"), None)
    neighbour = previous or (get_version(session, source.version_id) if source else None)
    key = (version.content_hash, neighbour.content_hash if neighbour else None)
    if key not in _FIGURES:
        if len(_FIGURES) > 4096:
            _FIGURES.clear()
        figures = shot_continuity(session, version, store, neighbour)
        _FIGURES[key] = figures
    cached = _FIGURES[key]
    # The refs are this database's; the figures are the content's.
    return ShotContinuity(version.ref, cached.frames, cached.within, cached.boundary,
                          neighbour.ref if neighbour is not None and cached.boundary is not None else None)


def _previous_shot(session: Session, version: VersionRecord) -> VersionRecord | None:
    from backlot.generation.rendering import previous_shot_version

    parts = version.asset.split("/", 2)
    if len(parts) < 3 or parts[0] != "shots":
        return None
    return previous_shot_version(session, version.project, parts[1], parts[2])
