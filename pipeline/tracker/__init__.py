"""The tracker: projects, sequences, shots, assets, versions, statuses, notes, events.

Every function takes a SQLAlchemy `Session` first and works inside the caller's
transaction (`with backlot.session() as s: ...` commits once at the end).
"""

from backlot.tracker.assets import create_asset, get_asset, list_assets
from backlot.tracker.events import list_events, record_event
from backlot.tracker.projects import (
    create_project,
    create_sequence,
    create_shot,
    get_project,
    get_shot,
    list_projects,
    list_sequences,
    list_shots,
    parse_fps,
    set_adapter_approval,
    set_stale_policy,
)
from backlot.tracker.records import (
    AssetRecord,
    FileRecord,
    InputRecord,
    NoteRecord,
    ProjectRecord,
    SequenceRecord,
    ShotRecord,
    VersionRecord,
)
from backlot.tracker.versions import (
    add_note,
    canonical_recipe,
    get_version,
    list_notes,
    list_versions,
    publish_version,
    resolve_version,
    set_status,
)

__all__ = [
    "AssetRecord", "FileRecord", "InputRecord", "NoteRecord", "ProjectRecord", "SequenceRecord", "ShotRecord",
    "VersionRecord", "add_note", "canonical_recipe", "create_asset", "create_project", "create_sequence",
    "create_shot", "get_asset", "get_project", "get_shot", "get_version", "list_assets", "list_events",
    "list_notes", "list_projects", "list_sequences", "list_shots", "list_versions", "parse_fps",
    "publish_version", "record_event", "resolve_version", "set_adapter_approval", "set_stale_policy", "set_status",
]
