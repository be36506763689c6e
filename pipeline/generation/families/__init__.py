"""Model families: one module per family of base model, behind one interface (base.py).

A family says how to load the pipelines a render needs, which modules LoRA targets, the
training objective, how a shot's frames are made, how continuity enters and what the recipe
records. Rendering, training, verification and the worker ask the family named on the base
model version (metadata "family"); nothing outside this package names a family's classes.

Family modules are imported on first use (they import nothing heavy at module level either).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from backlot.errors import InvalidInputError

if TYPE_CHECKING:
    from backlot.generation.families.base import Family

# name -> module under backlot.generation.families (each defines FAMILY)
FAMILIES = {"sd": "sd", "animatediff": "animatediff", "sdxl": "sdxl", "flux": "flux", "wan": "wan", "ltx": "ltx"}
# What a pipeline_class recorded before families existed means (base models registered then).
LEGACY_CLASSES = {"StableDiffusionPipeline": "sd", "AnimateDiffPipeline": "animatediff"}
LEGACY_ADAPTER_FAMILY = "sd"  # adapters from before families: only sd bases could be trained then


def get_family(name: str) -> Family:
    """The family called `name`, or a clear error listing the supported ones."""
    if name not in FAMILIES:
        raise InvalidInputError(f"unknown model family {name!r}: supported families are {', '.join(FAMILIES)}")
    module = importlib.import_module(f"backlot.generation.families.{FAMILIES[name]}")
    return module.FAMILY


def available_families() -> list[Family]:
    """Every family whose module is present (all of FAMILIES in a complete install)."""
    found = []
    for name in FAMILIES:
        try:
            found.append(get_family(name))
        except ModuleNotFoundError:  # a family module not written yet (or removed): not offered
            continue
    return found


def detect_family(index: dict) -> Family:
    """The family of a diffusers folder from its model_index.json (_class_name, then components)."""
    class_name = index.get("_class_name")
    matches = [f for f in available_families() if class_name in f.pipeline_classes]
    # Several families may share a class (a video family's image-to-video pipeline, say): the
    # components decide, e.g. a motion_adapter entry makes an AnimateDiff base.
    matches = [f for f in matches if f.matches_index(index)] or matches
    if not matches:
        accepted = "; ".join(f"{f.name} ({', '.join(f.pipeline_classes)})" for f in available_families())
        raise InvalidInputError(f"pipeline class {class_name!r} is not one Backlot can run; supported families: "
                                f"{accepted}. Save the model with one of these pipelines")
    return matches[0]


def family_of_version(version) -> Family:
    """The family recorded on a base model version (older versions: from their pipeline class)."""
    name = version.metadata.get("family") or LEGACY_CLASSES.get(version.metadata.get("pipeline_class", ""))
    if name is None:
        raise InvalidInputError(f"{version.ref} records no model family: register the model again")
    return get_family(name)


__all__ = ["FAMILIES", "LEGACY_CLASSES", "LEGACY_ADAPTER_FAMILY", "get_family", "available_families", "detect_family", "family_of_version"]
