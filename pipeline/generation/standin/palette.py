"""Where the figure is in a render of a world scene, and how far its palette is from concept art.

A world set is the same along each row (sky, ground, a horizon), so a render's figure is
where it stands out from its row's median (measured on 4x4 blocks, the latent's cells, so
grain does not count), whatever the light.
The palette distance is between the figure's mean colour and the mean colour of a character
sheet's figure (RGB, 0-441).
"""

from __future__ import annotations

import numpy as np

from backlot.generation.standin import world

BLOCK = 4
THRESHOLD = 100.0  # summed |RGB| of a block's mean from its row's: above grain (< ~60), below any figure (> 180)


def figure_mask(image: np.ndarray, scene: world.Scene | None = None) -> np.ndarray:
    """4x4 blocks that stand out from their row. The world's sets are the same along a row (sky,
    ground, horizon), so a row's median block is its background, whatever the light or tint."""
    h, w, _ = image.shape
    blocks = image.astype(np.float32).reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK, 3).mean(axis=(1, 3))
    background = np.median(blocks, axis=1, keepdims=True)
    standing_out = np.abs(blocks - background).sum(axis=2) > THRESHOLD
    return np.kron(standing_out, np.ones((BLOCK, BLOCK), bool))


def figure_colour(image: np.ndarray, scene: world.Scene) -> tuple[np.ndarray | None, float]:
    """(mean RGB of the figure, its horizontal centre in pixels); (None, nan) when there is none."""
    mask = figure_mask(image)
    if mask.sum() < 2 * BLOCK * BLOCK:
        return None, float("nan")
    columns = np.nonzero(mask)[1]
    return image[mask].astype(np.float32).mean(axis=0), float(columns.mean())


def sheet_colour(sheet: np.ndarray) -> np.ndarray:
    mask = np.abs(sheet.astype(np.float32) - np.array(world.SHEET_GROUND, np.float32)).sum(axis=2) > 40
    return sheet[mask].astype(np.float32).mean(axis=0)


def palette_distance(image: np.ndarray, scene: world.Scene, sheet: np.ndarray) -> float:
    """Distance from the render's figure colour to the sheet's; the largest possible when no figure."""
    colour, _ = figure_colour(image, scene)
    if colour is None:
        return float(np.sqrt(3) * 255)
    return float(np.linalg.norm(colour - sheet_colour(sheet)))
