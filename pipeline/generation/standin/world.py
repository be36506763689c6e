"""The procedural film world the learned stand-in is trained on.

A few characters, each with its own silhouette and palette, on a few sets under different
light, placed left, centre or right; each picture has a caption in the world's words
("mara on the left in the square at dusk"). Character sheets ("mara, sheet") are the
concept art: the character alone, large, on a plain ground. A costume is a new palette for
a character's silhouette (the demo's "new look"). Everything is drawn with numpy from a
seed: the same seed draws the same pictures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SIZE = 64
SHEET_GROUND = (236, 232, 218)


@dataclass(frozen=True)
class Character:
    name: str
    shape: str  # "tall" (round head, long coat), "broad" (square head, wide body), "cloak" (triangle)
    body: tuple[int, int, int]
    accent: tuple[int, int, int]


@dataclass(frozen=True)
class Scene:
    """One picture of the world: who (or nobody), where, under which light, placed where."""

    character: str | None
    set: str
    light: str
    place: str = "centre"

    @property
    def caption(self) -> str:
        if self.character is None:
            return f"the {self.set} at {self.light}"
        where = "in the centre" if self.place == "centre" else f"on the {self.place}"
        return f"{self.character} {where} in the {self.set} at {self.light}"


CHARACTERS = {
    "mara": Character("mara", "tall", (196, 58, 44), (242, 196, 64)),
    "ovid": Character("ovid", "broad", (40, 96, 204), (232, 232, 240)),
    "ines": Character("ines", "cloak", (142, 64, 176), (250, 150, 40)),
}
# A new look: the same silhouette in another palette (the demo's second character sheet).
COSTUMES = {
    "mara": Character("mara", "tall", (46, 168, 88), (240, 240, 236)),
}
SETS = {  # sky, ground, horizon row, feature colour
    "square": ((176, 196, 220), (186, 168, 140), 40, (150, 130, 110)),
    "forest": ((150, 186, 160), (58, 96, 56), 38, (70, 52, 36)),
    "harbour": ((168, 206, 232), (44, 84, 134), 44, (110, 110, 120)),
}
LIGHTS = {  # multiplier on the set; characters take half of it (their palette stays theirs)
    "noon": (1.0, 1.0, 1.0),
    "dusk": (1.0, 0.72, 0.52),
    "night": (0.36, 0.42, 0.72),
}
PLACES = {"left": 16, "centre": 32, "right": 48}
WORDS = sorted({*CHARACTERS, *SETS, *LIGHTS, *PLACES, "on", "the", "in", "at", "sheet"})


def all_scenes() -> list[Scene]:
    scenes = [Scene(c, s, l, p) for c in CHARACTERS for s in SETS for l in LIGHTS for p in PLACES]
    return scenes + [Scene(None, s, l) for s in SETS for l in LIGHTS]


def sheet_caption(name: str) -> str:
    return f"{name}, sheet"


# Concept art of a character: its sheet, and it in two scenes (where a look is seen in light).
CONCEPT_SCENES = (("square", "noon", "left"), ("forest", "dusk", "right"))


def concept_art(name: str, costume: bool = False) -> list[tuple[str, np.ndarray, str]]:
    """(label, picture, caption) of each piece of `name`'s concept art, in its costume if asked."""
    who = COSTUMES[name] if costume else CHARACTERS[name]
    pieces = [("sheet", draw_sheet(who), sheet_caption(name))]
    for set_name, light, place in CONCEPT_SCENES:
        scene = Scene(name, set_name, light, place)
        pieces.append((set_name, draw_scene(scene, character=who), scene.caption))
    return pieces


def draw_scene(scene: Scene, rng: np.random.Generator | None = None, character: Character | None = None) -> np.ndarray:
    """The scene as an HxWx3 uint8 array; `rng` jitters placement and size (None: canonical);
    `character` draws someone else's look in the character's place (a costume)."""
    sky, ground, horizon, feature = SETS[scene.set]
    light = np.array(LIGHTS[scene.light])
    dx, dy, scale = _jitter(rng)
    image = np.empty((SIZE, SIZE, 3), np.float32)
    image[:horizon] = sky
    image[horizon:] = ground
    _draw_set_feature(image, scene.set, feature, horizon)
    image *= light
    if scene.character is not None:
        figure_light = 0.5 + 0.5 * light
        who = character or CHARACTERS[scene.character]
        _draw_character(image, who, PLACES[scene.place] + dx, 56 + dy, scale, figure_light)
    return _to_uint8(image)


def draw_sheet(character: Character, rng: np.random.Generator | None = None) -> np.ndarray:
    """A character sheet: the character alone, large and centred, on a plain ground."""
    dx, dy, scale = _jitter(rng)
    image = np.empty((SIZE, SIZE, 3), np.float32)
    image[:] = SHEET_GROUND
    _draw_character(image, character, 32 + dx, 60 + dy, 1.45 * scale, np.ones(3))
    return _to_uint8(image)


def training_set(seed: int, jittered: int) -> tuple[list[np.ndarray], list[str]]:
    """Every scene and sheet once as drawn, plus `jittered` random ones; (images, captions)."""
    rng = np.random.default_rng(seed)
    scenes = all_scenes()
    images = [draw_scene(s) for s in scenes] + [draw_sheet(c) for c in CHARACTERS.values()]
    captions = [s.caption for s in scenes] + [sheet_caption(n) for n in CHARACTERS]
    for _ in range(jittered):
        pick = int(rng.integers(len(scenes) + 2 * len(CHARACTERS)))
        if pick < len(scenes):
            images.append(draw_scene(scenes[pick], rng))
            captions.append(scenes[pick].caption)
        else:  # sheets are drawn twice as often as one scene: they are the concept art
            name = list(CHARACTERS)[(pick - len(scenes)) % len(CHARACTERS)]
            images.append(draw_sheet(CHARACTERS[name], rng))
            captions.append(sheet_caption(name))
    return images, captions


def _jitter(rng: np.random.Generator | None) -> tuple[int, int, float]:
    if rng is None:
        return 0, 0, 1.0
    return int(rng.integers(-3, 4)), int(rng.integers(-2, 3)), float(rng.uniform(0.9, 1.1))


def _draw_set_feature(image: np.ndarray, name: str, colour, horizon: int) -> None:
    if name == "square":  # a fountain's basin on the horizon, and paving lines
        image[horizon - 4:horizon, 26:38] = colour
        image[horizon + 8::8, :] = np.array(colour) * 0.9
    elif name == "forest":  # trunks
        for x in (4, 22, 41, 58):
            image[8:horizon + 2, x:x + 3] = colour
    else:  # a quay wall and a mast
        image[horizon - 3:horizon, :] = colour
        image[10:horizon - 3, 52:54] = colour


def _draw_character(image: np.ndarray, who: Character, x: float, foot: float, scale: float, light) -> None:
    body = np.array(who.body) * light
    accent = np.array(who.accent) * light
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    s = scale
    if who.shape == "tall":
        coat = (np.abs(xx - x) <= 3.5 * s + (yy - (foot - 22 * s)) * 0.12) & (yy >= foot - 22 * s) & (yy <= foot)
        head = (xx - x) ** 2 + (yy - (foot - 26 * s)) ** 2 <= (4.2 * s) ** 2
        scarf = (np.abs(xx - x) <= 4.5 * s) & (yy >= foot - 22 * s) & (yy <= foot - 19 * s)
        parts = [(coat, body), (head, accent), (scarf, accent)]
    elif who.shape == "broad":
        torso = (np.abs(xx - x) <= 7.5 * s) & (yy >= foot - 16 * s) & (yy <= foot)
        head = (np.abs(xx - x) <= 4 * s) & (yy >= foot - 24 * s) & (yy < foot - 16 * s)
        belt = (np.abs(xx - x) <= 7.5 * s) & (yy >= foot - 8 * s) & (yy <= foot - 6 * s)
        parts = [(torso, body), (head, accent), (belt, accent)]
    else:
        top = foot - 22 * s
        cloak = (yy >= top) & (yy <= foot) & (np.abs(xx - x) <= (yy - top) * 0.42 + 1)
        head = (xx - x) ** 2 + (yy - (top - 3 * s)) ** 2 <= (3.6 * s) ** 2
        hem = cloak & (yy >= foot - 3 * s)
        parts = [(cloak, body), (head, accent), (hem, accent)]
    for mask, colour in parts:
        image[mask] = colour


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.round(image), 0, 255).astype(np.uint8)
