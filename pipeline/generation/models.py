"""The model registry: diffusers pipeline folders as `base_model` versions, and where to find them.

Registering detects the folder's model family from model_index.json (families/), checks the
folder has what that family needs and records the family on the version's metadata; every
later load, render and training asks that family.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from sqlalchemy.orm import Session

from backlot.config import load_settings
from backlot.errors import InvalidInputError, NotFoundError
from backlot.storage import Store
from backlot.store_cache import local_version_folder
from backlot.tracker import VersionRecord, publish_version

DEFAULT_TINY_NAME = "models/tiny"


def check_diffusers_folder(path: Path) -> dict:
    """The parsed model_index.json of a diffusers pipeline folder, or a clear error."""
    index = path / "model_index.json"
    if not path.is_dir():
        raise InvalidInputError(f"{path}: not a folder; point at a diffusers pipeline folder (with model_index.json)")
    if not index.is_file():
        raise InvalidInputError(f"{path}: no model_index.json, so not a diffusers pipeline folder "
                                "(save one with pipeline.save_pretrained)")
    try:
        config = json.loads(index.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"{index}: unreadable model index ({exc})") from None
    if not isinstance(config, dict) or "_class_name" not in config:
        raise InvalidInputError(f"{index}: no _class_name, so not a diffusers pipeline index")
    missing = [name for name, spec in config.items()
               if not name.startswith("_") and isinstance(spec, list) and spec[0] and not (path / name).is_dir()]
    if missing:
        raise InvalidInputError(f"{path}: components {', '.join(missing)} are listed in model_index.json but missing")
    return config


def register_model(session: Session, project: str, name: str, path: str | Path, *, copy: bool = True,
                   status: str = "approved", metadata: dict | None = None, store: Store | None = None,
                   actor: str | None = None) -> VersionRecord:
    """Register a local diffusers pipeline folder as a new `base_model` version.

    Its content hash covers every file. With `copy` the files go into the store; without,
    they stay where they are and the version records the folder (moving it breaks loading,
    which then says so).
    """
    from backlot.generation.families import detect_family

    folder = Path(path).expanduser().resolve()
    config = check_diffusers_folder(folder)
    family = detect_family(config)
    family.check_folder(folder, config)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    meta = {"pipeline_class": config["_class_name"], "family": family.name, **(metadata or {})}
    if not copy:
        meta["location"] = str(folder)
    return publish_version(session, project, name, files, kind="base_model", names=[str(p.relative_to(folder)) for p in files],
                           media_type="application/x-diffusers-pipeline", status=status, metadata=meta,
                           recipe=None, store=store, copy_files=copy, actor=actor)


def tiny_model_name(family: str) -> str:
    """The asset a family's tiny stand-in is registered as by default."""
    return {"sd": DEFAULT_TINY_NAME, "animatediff": "models/tiny_video"}.get(family, f"models/tiny_{family}")


def build_and_register_tiny(session: Session, project: str, name: str | None = None, seed: int = 0,
                            store: Store | None = None, actor: str | None = None,
                            kind: str = "image", family: str | None = None, learned: bool = False) -> VersionRecord:
    """Build a family's tiny stand-in (its `build_tiny`, random weights; `family` sd by default,
    `kind` the older spelling: image or animatediff) and register it, copied into the store.
    `learned`: the sd stand-in trained on the procedural film world instead (standin/; built
    once per seed and cached under BACKLOT_HOME), whose pictures show something.

    This is the one place a stand-in is chosen."""
    from backlot.generation.device import quiet_libraries
    from backlot.generation.families import get_family

    quiet_libraries()
    chosen = get_family(family or {"image": "sd"}.get(kind, kind))
    if learned and chosen.name != "sd":
        raise InvalidInputError(f"the learned stand-in is an sd model; there is none for {chosen.name}: "
                                "leave out --family, or build the random-weight stand-in of that family")
    with tempfile.TemporaryDirectory() as tmp:
        if learned:
            from backlot.generation.standin import build_learned_pipeline

            folder = build_learned_pipeline(Path(tmp) / "tiny", seed)
        else:
            folder = chosen.build_tiny(Path(tmp) / "tiny", seed)
        return register_model(session, project, name or tiny_model_name(chosen.name), folder, copy=True, store=store,
                              actor=actor, metadata={"stand_in": "learned" if learned else True, "tiny_seed": seed,
                                                     "tiny_kind": chosen.name})


def version_folder(version: VersionRecord, store: Store | None = None) -> Path:
    """The local folder holding a version's files under their relative names."""
    location = version.metadata.get("location")
    if location:
        folder = Path(location)
        if not folder.is_dir():
            raise NotFoundError(f"{version.ref} refers to {folder}, which no longer exists; register the model again")
        return folder
    store = store or Store(load_settings().store_url)
    if not store.local:  # through the host's verified, size-bounded cache
        return local_version_folder(store, version.content_hash, version.files)
    folder = Path(store.version_dir(version.content_hash))
    if not folder.is_dir():
        raise NotFoundError(f"{version.ref}: its files are missing from the store at {folder}")
    return folder

