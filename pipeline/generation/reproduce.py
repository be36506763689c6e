"""Reproduce and verify renders; re-render with current upstream (what regeneration calls).

`verify_version` replays a version's recipe in a fresh Python process (nothing cached from
this one) and compares the bytes of every file with the stored ones. Run as a module, this
file is that fresh process: `python -m backlot.generation.reproduce VERSION_ID OUT_DIR`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping
from pathlib import Path

from sqlalchemy.orm import Session

from backlot.errors import BacklotError, InvalidInputError, NotFoundError
from backlot.generation.rendering import (
    RenderPlan,
    plan_from_recipe,
    previous_shot_version,
    publish_render,
)
from backlot.generation.models import version_folder
from backlot.storage import Store
from backlot.tracker import VersionRecord, get_version
from backlot.refs import parse_version_ref

if TYPE_CHECKING:
    from backlot.provenance.clearance import ClearanceOverride


@dataclass(frozen=True)
class VerifyResult:
    ref: str
    identical: bool
    files_checked: int
    first_difference: str | None  # the first differing frame (or other file), in frame order
    detail: str


def verify_version(session: Session, ref: str, *, timeout: float = 900) -> VerifyResult:
    """Re-render `ref` from its recipe in a fresh process and compare bytes with what is stored."""
    version = get_version(session, ref)
    plan_from_recipe(session, version)  # fail here, clearly, for versions that cannot be replayed
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        result = subprocess.run([sys.executable, "-m", "backlot.generation.reproduce", str(version.id), tmp],
                                capture_output=True, text=True, timeout=timeout, env=env)
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
            raise BacklotError(f"re-rendering {version.ref} failed: {tail[0]}")
        return compare_files(version, version_folder(version), Path(tmp))


def compare_files(version: VersionRecord, stored: Path, rendered: Path) -> VerifyResult:
    """Compare the stored files (their bytes as they are now) with a re-render, frames first."""
    recorded = {f.path: f.sha256 for f in version.files}
    actual = {name: _sha256(stored / name) if (stored / name).is_file() else None for name in recorded}
    produced = {str(p.relative_to(rendered)): _sha256(p) for p in rendered.rglob("*") if p.is_file()}
    ordered = sorted(set(recorded) | set(produced), key=lambda name: (not name.startswith("frames/"), name))
    for name in ordered:
        if actual.get(name) != produced.get(name):
            if name not in produced:
                what = "missing from the re-render"
            elif name not in recorded:
                what = "not in the stored version"
            elif actual[name] != recorded[name]:
                what = "the stored file was altered after publishing (its hash no longer matches the record)"
            else:
                what = "the re-render's bytes differ"
            return VerifyResult(version.ref, False, len(recorded), name, f"{name}: {what}")
    return VerifyResult(version.ref, True, len(recorded), None, f"all {len(recorded)} files identical")


def rerender_version(session: Session, ref: str | int, *, continuity: str | int | None = None,
                     inputs: Mapping[int, int] | None = None, store: Store | None = None, progress=None,
                     idempotency_key: str | None = None, actor: str | None = None) -> VersionRecord:
    """A new version of the same shot from the same recipe (same seeds and settings), with
    upstream swapped: by `inputs` (old input version id -> new version id, as a regeneration
    plan says), else each adapter and the base model to the approved version of its asset (or
    the same one when none is approved); continuity to `continuity` or the previous shot's
    current version; frames to the shot's current cut. Records `regenerated_from`."""
    version = get_version(session, ref)
    old = plan_from_recipe(session, version)
    shot = _shot_of(version)
    project = parse_version_ref(version.ref).project
    swap = _swapper(session, inputs)
    plan = dataclasses.replace(
        old,
        base_model=swap(old.base_model),
        adapters=[(swap(a), w) for a, w in old.adapters],
        continuity=_neighbour(session, project, shot, version, continuity) if old.continuity else None,
        **_frames_now(session, project, shot),
    )
    return publish_render(session, project, shot, plan, output=version.metadata.get("output", "main"),
                          extra_inputs=[("regenerated_from", version.id)], store=store, progress=progress,
                          idempotency_key=idempotency_key, actor=actor)


def retrain_adapter(session: Session, ref: str | int, *, inputs: Mapping[int, int] | None = None,
                    store: Store | None = None, progress=None, idempotency_key: str | None = None,
                    actor: str | None = None,
                    clearance_override: str | ClearanceOverride | None = None) -> VersionRecord:
    """A new version of an adapter from its training recipe (same settings, seed and captions),
    on its training data and base model swapped by `inputs` (old id -> new id), else to the
    approved version of each one's asset. Records `regenerated_from`. A clearance override
    recorded on the adapter is replayed for the pieces it covered (`clearance_override`: a new one)."""
    from backlot.generation.training import TrainSettings, train_adapter
    from backlot.provenance.clearance import carried_override

    version = get_version(session, ref)
    recipe = version.recipe or {}
    if version.kind != "adapter" or recipe.get("kind") != "lora_training":
        raise InvalidInputError(f"{version.ref} has no Backlot training recipe to replay: "
                                "train a new version with `backlot adapter train`")
    swap = _swapper(session, inputs)
    by_ref = {i.ref: i.version_id for i in version.inputs if i.role == "training_data"}
    ordered = [by_ref[r] for r in recipe.get("training_data", []) if r in by_ref] or sorted(by_ref.values())
    arts = [swap(get_version(session, i)) for i in ordered]
    (base_id,) = [i.version_id for i in version.inputs if i.role == "base_model"]
    settings = TrainSettings(**{k: recipe[k] for k in TrainSettings.__dataclass_fields__ if k in recipe})
    return train_adapter(session, version.project, version.asset, [a.ref for a in arts],
                         base_model=swap(get_version(session, base_id)).ref, captions=recipe.get("captions", []),
                         settings=settings, store=store, progress=progress, idempotency_key=idempotency_key,
                         actor=actor, extra_inputs=[("regenerated_from", version.id)],
                         clearance_override=clearance_override or carried_override(version))


def _swapper(session: Session, inputs: Mapping[int, int] | None):
    """old version -> the version to use instead: from `inputs` when given, else the approved one."""
    if inputs is None:
        return lambda v: _current(session, v)
    return lambda v: get_version(session, inputs[v.id]) if v.id in inputs else v


def _neighbour(session: Session, project: str, shot: str, version: VersionRecord,
               continuity: str | int | None) -> VersionRecord | None:
    if continuity is not None:
        return get_version(session, continuity)
    return previous_shot_version(session, project, shot, version.metadata.get("output", "main"))


def _current(session: Session, version: VersionRecord) -> VersionRecord:
    parsed = parse_version_ref(version.ref)
    try:
        return get_version(session, f"{parsed.project}/{parsed.asset}@approved")
    except NotFoundError:
        return version


def _frames_now(session: Session, project: str, shot: str) -> dict:
    from backlot.tracker import get_shot

    record = get_shot(session, project, shot)
    return {"first_frame": record.cut_in - record.handles, "frame_count": record.frame_count + 2 * record.handles}


def _shot_of(version: VersionRecord) -> str:
    parts = version.asset.split("/")
    if version.kind != "shot_render" or len(parts) < 3 or parts[0] != "shots":
        raise InvalidInputError(f"{version.ref} is not a shot render")
    return parts[1]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _replay(version_id: int, out: Path) -> None:
    """The fresh process: rebuild the plan from the database and render into `out`."""
    import backlot
    from backlot.generation.rendering import render_frames

    with backlot.session() as s:
        plan: RenderPlan = plan_from_recipe(s, get_version(s, version_id))
    render_frames(plan, out)


if __name__ == "__main__":
    _replay(int(sys.argv[1]), Path(sys.argv[2]))
