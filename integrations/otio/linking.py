"""Relinking OTIO clips through Backlot, one clip at a time, as OTIO's media linkers work.

A timeline's clips are linked one by one, so the project (mapping rules, shots, their
versions, and how each take's source frames map to shot frames) is loaded once and kept
for a few seconds; `refresh=true` reloads it.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from sqlalchemy import text

import backlot
from backlot.config import load_settings
from backlot.editorial import otio_values
from backlot.editorial.conform import media_offset, original_media, pick_media, relink_clip
from backlot.editorial.mapping import MappingRule, match_clip
from backlot.editorial.settings import get_settings
from backlot.editorial.flatten import clip_retime
from backlot.editorial.frames import used_source_range
from backlot.editorial.shot_versions import ShotVersion, current_shot_versions, shot_frames_held
from backlot.editorial.shots import ExistingShot, load_shots
from backlot.errors import InvalidInputError
from backlot.storage import Store
from backlot.tracker.choices import parse_policy
from backlot.tracker.projects import find_project

SNAPSHOT_SECONDS = 10.0


@dataclass(frozen=True)
class LinkContext:
    """What the linker knows of one project."""

    project: str
    policy: str
    media: str  # sequence | movie: which of a version's media to prefer
    rate: Fraction
    rules: tuple[MappingRule, ...]
    shots: dict[str, ExistingShot]
    versions: dict[int, ShotVersion]  # by shot id
    deltas: dict[tuple[str, str], int]  # (shot, take) -> shot frame minus source frame, from the latest cut
    store: Store
    loaded_at: float


_cache: dict[tuple[str, str, str, str], LinkContext] = {}
_lock = threading.Lock()


def link_clip(clip: Any, args: dict[str, Any]) -> Any:
    """The clip's new media reference (the clip is relinked in place), or None to keep its media."""
    context = _context(args)
    code = _shot_code(clip, context)
    shot = context.shots.get(code) if code else None
    version = context.versions.get(shot.id) if shot else None
    if shot is None or version is None or version.media is None:
        return None
    source = clip.source_range if clip.source_range is not None else clip.trimmed_range()
    source_in = round(source.start_time.value)
    delta = _delta(clip, code, shot, source_in, context)
    first, out_excl = used_source_range(source_in, 0, max(1, round(source.duration.value)),
                                        clip_retime(clip, 1, 1))
    if not shot_frames_held(version).covers(first + delta, out_excl - 1 + delta):
        return None  # the version lacks frames this clip shows: keep what the editor had
    media = pick_media(version, context.media)
    assert media is not None
    original = original_media(clip)
    media_in = relink_clip(clip, version, media, delta, context.rate, context.store)
    clip.metadata["backlot"] = {"shot": code, "version": version.ref, "version_id": version.version_id,
                                "shot_in": media_in - media_offset(version, media), "linked_by": "backlot media linker",
                                **({"original_media": original} if original else {})}
    return clip.media_reference


def _shot_code(clip: Any, context: LinkContext) -> str | None:
    shot = otio_values.get(otio_values.get(clip.metadata, "backlot"), "shot")
    if shot:
        return str(shot)
    match = match_clip(clip, _reel(clip), context.rules)
    return match.code if match else None


def _reel(clip: Any) -> str | None:
    reel = otio_values.get(otio_values.get(clip.metadata, "cmx_3600"), "reel")
    return str(reel) if reel else None


def _delta(clip: Any, code: str, shot: ExistingShot, source_in: int, context: LinkContext) -> int:
    """Shot frame minus source frame for this clip: from an earlier link, the cut, or the shot's start."""
    shot_in = otio_values.get(otio_values.get(clip.metadata, "backlot"), "shot_in")
    if shot_in is not None:
        return int(shot_in) - source_in
    take = _reel(clip) or getattr(clip.media_reference, "target_url", None) or clip.name
    if (code, take) in context.deltas:
        return context.deltas[(code, take)]
    return shot.cut_in - source_in


def _context(args: dict[str, Any]) -> LinkContext:
    project = args.get("project") or os.environ.get("BACKLOT_PROJECT")
    if not project:
        raise InvalidInputError("the backlot media linker needs a project: pass -m project=CODE "
                                "(media_linker_argument_map={'project': ...}) or set BACKLOT_PROJECT")
    policy = parse_policy(str(args.get("policy") or "approved")).value
    media = str(args.get("media") or "sequence")
    if media not in ("sequence", "movie"):
        raise InvalidInputError(f"media {media!r} is invalid for the backlot media linker: use sequence or movie")
    settings = load_settings()
    key = (settings.database_url or str(settings.home), str(project), policy, media)
    refresh = str(args.get("refresh", "")).lower() in ("1", "true", "yes")
    with _lock:
        cached = _cache.get(key)
        if cached is None or refresh or time.monotonic() - cached.loaded_at > SNAPSHOT_SECONDS:
            cached = _cache[key] = _load(str(project), policy, media, Store(settings.store_url))
        return cached


def _load(project: str, policy: str, media: str, store: Store) -> LinkContext:
    with backlot.session() as s:
        proj = find_project(s, project)
        shots = load_shots(s, proj.id)
        versions = current_shot_versions(s, [shot.id for shot in shots.values()], policy, movies=media == "movie")
        rows = s.execute(text("""
            SELECT DISTINCT ON (ci.shot_code, take) ci.shot_code, take, ci.cut_in - ci.needed_in AS delta
            FROM cut_revisions r JOIN cut_items ci ON ci.revision_id = r.id
            CROSS JOIN LATERAL (SELECT coalesce(ci.reel, ci.media_url, ci.clip_name) AS take) t
            WHERE r.project_id = :p AND ci.shot_code IS NOT NULL AND ci.cut_in IS NOT NULL
            ORDER BY ci.shot_code, take, r.number DESC, ci.position
        """), {"p": proj.id})
        deltas = {(row.shot_code, row.take): row.delta for row in rows}
        rules = get_settings(s, proj).rules
        rate = Fraction(proj.fps_num, proj.fps_den)
    return LinkContext(project, policy, media, rate, rules, shots, versions, deltas, store, time.monotonic())
