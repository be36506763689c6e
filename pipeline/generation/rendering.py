"""Shot rendering with continuity, and the plan/recipe that makes it reproducible.

How a shot's frames are made is the base model's family's business (families/): an image
family renders frame by frame, the first from the prompt (or, when the previous shot in
editorial order has a version, from that shot's last frame — the `continuity` input), every
later frame from the frame before it, frame i with seed + i; a video family makes frames
together, in windows. Continuity always enters as the previous shot's last frame, and the
recipe records which frame (path and hash). Everything that changes the bytes is in the
recipe; `render_frames` takes only the plan, so a fresh process can replay a recipe exactly
(see reproduce.py).
"""

from __future__ import annotations

import math
import tempfile
import warnings
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Sequence

from sqlalchemy.orm import Session

from backlot.errors import InvalidInputError, NotFoundError, article
from backlot.generation.device import library_versions
from backlot.generation.families import LEGACY_ADAPTER_FAMILY, family_of_version, get_family
from backlot.generation.loading import activate_adapters, load_pipeline
from backlot.generation.media import ShotMediaWriter, load_image
from backlot.generation.models import version_folder
from backlot.provenance import check_project_signer, sign_outputs
from backlot.storage import Store
from backlot.tracker import VersionRecord, get_project, get_shot, get_version, list_shots, publish_version

RENDERER = "backlot.render.v1"
DEFAULT_OUTPUT = "main"


@dataclass(frozen=True)
class AdapterUse:
    ref: str  # PROJECT/ASSET@N, exact
    weight: float = 1.0


@dataclass(frozen=True)
class RenderSettings:
    prompt: str
    negative_prompt: str = ""
    seed: int = 0
    steps: int = 8
    guidance_scale: float = 5.0
    width: int = 64
    height: int = 64
    frame_strength: float = 0.5  # img2img strength from one frame to the next
    continuity_strength: float = 0.6  # img2img strength from the previous shot's last frame

    def check(self) -> None:
        if not self.prompt.strip():
            raise InvalidInputError("a render needs a --prompt")
        if self.steps < 1:
            raise InvalidInputError("--steps must be at least 1")
        if self.width % 8 or self.height % 8 or self.width < 8 or self.height < 8:
            raise InvalidInputError(f"--size {self.width}x{self.height}: both sides must be multiples of 8")
        for name in ("frame_strength", "continuity_strength"):
            if not 0 < getattr(self, name) <= 1:
                raise InvalidInputError(f"{name} must be in (0, 1]")
        weakest = min(self.frame_strength, self.continuity_strength)
        if int(self.steps * weakest) < 1:  # img2img runs steps x strength denoising steps
            raise InvalidInputError(f"--steps {self.steps} at strength {weakest} leaves frames after the first "
                                    f"no denoising step: use at least {math.ceil(1 / weakest)} steps")


@dataclass(frozen=True)
class RenderPlan:
    """Everything a render needs, resolved: what `render_frames` consumes and the recipe records."""

    settings: RenderSettings
    first_frame: int
    frame_count: int
    fps: Fraction
    base_model: VersionRecord
    adapters: list[tuple[VersionRecord, float]] = field(default_factory=list)
    continuity: VersionRecord | None = None

    def recipe(self, loaded) -> dict:
        text2img = loaded.text2img
        family = get_family(loaded.family)
        return {
            "kind": "shot_render", "renderer": RENDERER, **asdict(self.settings),
            "first_frame": self.first_frame, "frame_count": self.frame_count,
            "fps": f"{self.fps.numerator}/{self.fps.denominator}", "family": family.name,
            "pipeline_class": type(text2img).__name__, "img2img_class": type(loaded.img2img).__name__,
            "scheduler_class": type(text2img.scheduler).__name__, "scheduler_config": dict(text2img.scheduler.config),
            "base_model": self.base_model.content_hash,
            "adapters": [{"ref": a.ref, "content_hash": a.content_hash, "weight": w} for a, w in self.adapters],
            "continuity": self.continuity.ref if self.continuity else None,
            "continuity_frame": _continuity_file(self.continuity) if self.continuity else None,
            "prompt_truncated": family.prompt_truncated(loaded, self.settings.prompt),
            "torch_threads": loaded.device.threads, "device_class": loaded.device.device_class,
            "versions": library_versions(), **family.recipe_fields(loaded, self),
        }


def plan_render(session: Session, project: str, shot: str, settings: RenderSettings, *, base_model: str,
                adapters: Sequence[AdapterUse] = (), frames: int | None = None,
                continuity: str | None | bool = True, output: str = DEFAULT_OUTPUT) -> RenderPlan:
    """Resolve a render: frames from the shot's cut (with handles) unless `frames` is given;
    continuity from the previous shot in editorial order (True), an explicit ref, or none (False)."""
    settings.check()
    shot_record = get_shot(session, project, shot)
    if frames is not None and frames < 1:
        raise InvalidInputError(f"--frames {frames}: a shot needs at least one frame")
    first = shot_record.cut_in - shot_record.handles
    count = frames if frames is not None else shot_record.frame_count + 2 * shot_record.handles
    base = get_version(session, base_model)
    if base.kind != "base_model":
        raise InvalidInputError(f"{base.ref} is {article(base.kind)}, not a base_model")
    family = family_of_version(base)
    family.check_settings(settings)
    family.check_frame_count(count)
    resolved = [(_checked_adapter(session, use.ref, base), use.weight) for use in adapters]
    if continuity is True:
        neighbour = previous_shot_version(session, project, shot, output)
    else:
        neighbour = get_version(session, continuity) if continuity else None
    fps = get_project(session, project).fps
    return RenderPlan(settings, first, count, fps, base, resolved, neighbour)


def _checked_adapter(session: Session, ref: str, base: VersionRecord) -> VersionRecord:
    adapter = get_version(session, ref)
    if adapter.kind != "adapter":
        raise InvalidInputError(f"{adapter.ref} is {article(adapter.kind)}, not an adapter")
    theirs, ours = adapter_family(adapter), family_of_version(base).name
    if theirs != ours:
        raise InvalidInputError(f"{adapter.ref} is {article(theirs)} adapter and {base.ref} is {article(ours)} base "
                                f"model: an adapter only works on the family it was trained on; train one on {base.ref}")
    trained_on = [i for i in adapter.inputs if i.role == "base_model"]
    if trained_on and trained_on[0].version_id != base.id:
        trained_base = get_version(session, trained_on[0].version_id)
        if trained_base.content_hash != base.content_hash:
            raise InvalidInputError(f"{adapter.ref} was trained on {trained_base.ref}, not {base.ref}: "
                                    "retrain it on this base model or render with that one")
    return adapter


def adapter_family(adapter: VersionRecord) -> str:
    """The family an adapter was trained for (adapters from before families: sd, the only one then)."""
    return (adapter.metadata.get("family") or (adapter.recipe or {}).get("family")
            or LEGACY_ADAPTER_FAMILY)


def previous_shot_version(session: Session, project: str, shot: str, output: str = DEFAULT_OUTPUT) -> VersionRecord | None:
    """The current version (approved, else latest) of the shot before `shot` in editorial order."""
    shots = list_shots(session, project)
    codes = [s.code for s in shots]
    index = codes.index(shot)
    if index == 0:
        return None
    asset = render_asset(codes[index - 1], output)
    for selector in ("approved", "latest"):
        try:
            return get_version(session, f"{project}/{asset}@{selector}")
        except NotFoundError:  # no such asset or version yet: try the next selector
            continue
    return None


def render_asset(shot: str, output: str = DEFAULT_OUTPUT) -> str:
    return f"shots/{shot}/{output}"


def render_frames(plan: RenderPlan, out: Path, store: Store | None = None,
                  progress: Callable[[int], None] | None = None) -> tuple[list[Path], dict]:
    """Render the plan's frames, preview and thumbnail into `out`; returns (files, recipe)."""
    family = family_of_version(plan.base_model)
    family.check_settings(plan.settings)  # again here: a rerender takes its frame count from the current cut
    family.check_frame_count(plan.frame_count)
    loaded = load_pipeline(plan.base_model.content_hash, version_folder(plan.base_model, store), family=family.name)
    # Named by content, not id: a process may serve several databases, and ids repeat across them.
    activate_adapters(loaded, [(f"lora_{a.content_hash[:20]}", version_folder(a, store), w) for a, w in plan.adapters])
    recipe = plan.recipe(loaded)
    if recipe["prompt_truncated"]:
        warnings.warn("prompt is longer than the text encoder takes and was truncated (recorded in the recipe)",
                      stacklevel=2)
    previous = _continuity_frame(plan, store)
    media = ShotMediaWriter(out, plan.first_frame, plan.fps, thumbnail_index=plan.frame_count // 2)
    try:
        family.make_frames(loaded, plan, previous, media.add, progress)
        return media.finish(), recipe
    except BaseException:
        media.abort()
        raise


def _continuity_file(version: VersionRecord) -> dict:
    """The frame of `version` a continuing shot starts from: its last, by path and hash."""
    frames = sorted((f for f in version.files if f.path.startswith("frames/")), key=lambda f: f.path)
    if not frames:
        raise InvalidInputError(f"{version.ref} has no frames to continue from")
    return {"path": frames[-1].path, "sha256": frames[-1].sha256}


def _continuity_frame(plan: RenderPlan, store: Store | None):
    if plan.continuity is None:
        return None
    frame = _continuity_file(plan.continuity)
    return load_image(version_folder(plan.continuity, store) / frame["path"], (plan.settings.width, plan.settings.height))


def publish_render(session: Session, project: str, shot: str, plan: RenderPlan, *, output: str = DEFAULT_OUTPUT,
                   extra_inputs: Sequence[tuple[str, int]] = (), store: Store | None = None,
                   progress: Callable[[int], None] | None = None, idempotency_key: str | None = None,
                   actor: str | None = None) -> VersionRecord:
    """Render and publish a `shot_render` version with its inputs and recipe."""
    signer = check_project_signer(session, project)  # before any GPU work: a missing signer stops here
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        files, recipe = render_frames(plan, out, store, progress)
        inputs = [("base_model", plan.base_model.id)] + [("adapter", a.id) for a, _ in plan.adapters]
        if plan.continuity:
            inputs.append(("continuity", plan.continuity.id))
        inputs += list(extra_inputs)
        last = plan.first_frame + plan.frame_count - 1
        version = publish_version(session, project, render_asset(shot, output), files, kind="shot_render", shot=shot,
                                  names=[str(f.relative_to(out)) for f in files], inputs=inputs, recipe=recipe,
                                  metadata={"frame_range": [plan.first_frame, last], "output": output},
                                  store=store, actor=actor, media_type="image/png", idempotency_key=idempotency_key)
        sign_outputs(session, version, signer, store)  # signed copies beside the unsigned bytes (docs/provenance.md)
        return version


def render_shot(session: Session, project: str, shot: str, settings: RenderSettings, *, base_model: str,
                adapters: Sequence[AdapterUse] = (), frames: int | None = None, continuity: str | None | bool = True,
                output: str = DEFAULT_OUTPUT, store: Store | None = None,
                progress: Callable[[int], None] | None = None, actor: str | None = None) -> VersionRecord:
    plan = plan_render(session, project, shot, settings, base_model=base_model, adapters=adapters, frames=frames,
                       continuity=continuity, output=output)
    return publish_render(session, project, shot, plan, output=output, store=store, progress=progress, actor=actor)


def plan_from_recipe(session: Session, version: VersionRecord) -> RenderPlan:
    """The plan that made `version`, rebuilt from its recipe and inputs (for verification)."""
    recipe = version.recipe or {}
    if recipe.get("renderer") != RENDERER:
        raise InvalidInputError(f"{version.ref} was not rendered by Backlot ({RENDERER}); nothing to replay")
    settings = RenderSettings(**{k: recipe[k] for k in RenderSettings.__dataclass_fields__})
    by_role = {}
    for i in version.inputs:
        by_role.setdefault(i.role, []).append(i.version_id)
    base = get_version(session, by_role["base_model"][0])
    weights = {a["ref"]: a["weight"] for a in recipe["adapters"]}
    adapters = [(a, weights[a.ref]) for a in (get_version(session, vid) for vid in by_role.get("adapter", []))]
    adapters.sort(key=lambda pair: [a["ref"] for a in recipe["adapters"]].index(pair[0].ref))
    continuity = get_version(session, by_role["continuity"][0]) if "continuity" in by_role else None
    return RenderPlan(settings, recipe["first_frame"], recipe["frame_count"], Fraction(recipe["fps"]), base, adapters,
                      continuity)


__all__ = ["AdapterUse", "adapter_family", "RenderPlan", "RenderSettings", "plan_render", "publish_render", "render_frames",
           "render_shot", "previous_shot_version", "plan_from_recipe", "render_asset"]
