"""Backlot's core library: `import backlot` is the TD's API.

    import backlot

    with backlot.session() as s:
        backlot.create_project(s, "film")
        art = backlot.publish_version(s, "film", "characters/mara", ["mara.png"], kind="concept_art")
        backlot.set_status(s, art.ref, "approved", note="final look")
        for stale in backlot.find_stale_versions(s, "film"):
            print(stale.ref, stale.reason.path)

Heavy libraries (torch, diffusers) are never imported here.
"""

from backlot.db.engine import get_engine, session_scope as session
from backlot.errors import BacklotError, ConflictError, DatabaseError, InvalidInputError, NotFoundError
from backlot.lineage import (
    LineageEdge,
    PlanItem,
    StaleReason,
    StaleVersion,
    find_stale_versions,
    get_history,
    get_inputs,
    get_outputs,
    plan_regeneration,
)
from backlot.refs import AssetRef, VersionRef, parse_asset_ref, parse_version_ref
from backlot.storage import Store
from backlot.tracker import *  # noqa: F403 - the tracker's public functions and records
from backlot.tracker import __all__ as _tracker_all

__all__ = [
    "AssetRef", "BacklotError", "ConflictError", "DatabaseError", "InvalidInputError", "LineageEdge",
    "NotFoundError", "StaleReason", "StaleVersion", "Store", "VersionRef", "find_stale_versions", "get_engine",
    "get_history", "get_inputs", "get_outputs", "parse_asset_ref", "PlanItem", "plan_regeneration", "parse_version_ref", "session", *_tracker_all,
]
