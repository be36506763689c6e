"""Backlot's core library: `import pipeline` is the TD's API.

    import pipeline

    with pipeline.session() as s:
        pipeline.create_project(s, "film")
        art = pipeline.publish_version(s, "film", "characters/mara", ["mara.png"], kind="concept_art")
        pipeline.set_status(s, art.ref, "approved", note="final look")
        for stale in pipeline.find_stale_versions(s, "film"):
            print(stale.ref, stale.reason.path)

Heavy libraries (torch, diffusers) are never imported here.
"""

from pipeline.db.engine import get_engine, session_scope as session
from pipeline.errors import BacklotError, ConflictError, DatabaseError, InvalidInputError, NotFoundError
from pipeline.lineage import (
    LineageEdge,
    PlanItem,
    StaleReason,
    StaleVersion,
    find_stale_versions,
    get_inputs,
    get_outputs,
    plan_regeneration,
)
from pipeline.refs import AssetRef, VersionRef, parse_asset_ref, parse_version_ref
from pipeline.storage import Store
from pipeline.tracker import *  # noqa: F403 - the tracker's public functions and records
from pipeline.tracker import __all__ as _tracker_all

__all__ = [
    "AssetRef", "BacklotError", "ConflictError", "DatabaseError", "InvalidInputError", "LineageEdge",
    "NotFoundError", "StaleReason", "StaleVersion", "Store", "VersionRef", "find_stale_versions", "get_engine",
    "get_inputs", "get_outputs", "parse_asset_ref", "PlanItem", "plan_regeneration", "parse_version_ref", "session", *_tracker_all,
]
