"""The shot versions editorial cares about: which frames they cover, and their media.

A shot_render version says which shot frames it holds in its metadata:
`{"frame_range": [first, last]}` (inclusive; "first-last" is read too), as the generation
engine writes it. Its media is an image sequence (`frames/frame.1001.png`, ... numbered in
shot frames) and/or a movie whose first frame is `frame_range[0]` (a movie is only used when
the version records its frame range).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterable, NamedTuple

from sqlalchemy.orm import Session

from backlot.editorial.sql import fetch_custom_plan

_RANGE_TEXT = re.compile(r"^\s*(-?\d+)\s*-\s*(-?\d+)\s*$")
_JSONB_PAIR = re.compile(r"^\[(-?\d+), (-?\d+)\]$")  # how PostgreSQL prints a jsonb [first, last]
_FRAME_FILE = re.compile(r"^(?P<prefix>.*?)(?P<frame>\d+)(?P<suffix>\.[A-Za-z0-9]+)$")


@dataclass(frozen=True)
class Coverage:
    """The frames a version holds: `known` False when it records none, `first`/`last` None when malformed."""

    known: bool
    first: int | None = None
    last: int | None = None

    def covers(self, first: int, last: int) -> bool:
        return self.first is not None and self.last is not None and self.first <= first and last <= self.last

    def label(self) -> str:
        if not self.known:
            return "unknown"
        return f"{self.first}-{self.last}" if self.first is not None else "malformed"


def coverage_of(metadata: dict[str, Any] | None) -> Coverage:
    """The same reading of `frame_range` as the database's backlot_frame_range()."""
    value = (metadata or {}).get("frame_range")
    if value is None:
        return Coverage(False)
    first = last = None
    if isinstance(value, list) and len(value) == 2:
        first, last = _as_int(value[0]), _as_int(value[1])
    elif isinstance(value, str) and (match := _RANGE_TEXT.match(value)):
        first, last = int(match.group(1)), int(match.group(2))
    if first is None or last is None or last < first:
        return Coverage(True)
    return Coverage(True, first, last)


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    return None


@dataclass(frozen=True)
class Media:
    """Where a version's pictures are, for a media reference."""

    kind: str  # "image_sequence" | "movie"
    folder: str  # relative folder inside the version ("" for the top)
    prefix: str = ""  # image sequence: file name before the frame number
    suffix: str = ""  # ... and after it
    padding: int = 0
    start_frame: int = 0  # image sequence: the frame numbers of its first and last files
    last_frame: int = 0
    file: str = ""  # movie: its relative name


class ShotVersion(NamedTuple):  # a named tuple: a conform reads one per shot, thousands
    """The version of a shot that editorial uses, with what it covers and its media."""

    shot_id: int
    shot: str
    asset: str
    version_id: int
    ref: str
    number: int
    status: str
    content_hash: str
    coverage: Coverage
    sequence: Media | None  # the image sequence, if it has one
    movie: Media | None  # the movie, if it has one

    @property
    def media(self) -> Media | None:
        """The media to point at by default: the image sequence, else the movie."""
        return self.sequence or self.movie


# A render has a file per frame: a version's first image and first movie are kept on its row by
# the database (migration 0006); its last image is read (through the (version_id, path) index,
# under CASE: only for the versions that need it) only when it records no frame range, which
# otherwise gives the sequence's length.
_IMAGE = r"'\d+\.(png|exr|jpe?g|tiff?|dpx|webp)$'"
_CURRENT_SQL = r"""
SELECT s.id AS shot_id, s.code AS shot, a.name AS asset, v.id AS version_id, v.number, v.status::text AS status,
       v.content_hash, (v.metadata -> 'frame_range')::text AS frame_range, p.code || '/' || a.name || '@' || v.number AS ref,
       CASE WHEN %(media)s THEN v.first_image END AS first_image,
       CASE WHEN %(media)s AND v.first_image IS NOT NULL AND NOT v.metadata ? 'frame_range' THEN (
           SELECT f.path FROM version_files f
           WHERE f.version_id = v.id AND f.path ~* IMAGE
             AND left(f.path, length(regexp_replace(v.first_image, '\d+\.[A-Za-z0-9]+$', '')))
                 = regexp_replace(v.first_image, '\d+\.[A-Za-z0-9]+$', '')
           ORDER BY f.path DESC LIMIT 1) END AS last_image,
       CASE WHEN %(media)s AND (%(movies)s OR v.first_image IS NULL) THEN v.first_movie END AS movie
WANTED
JOIN projects p ON p.id = s.project_id
JOIN assets a ON a.shot_id = s.id AND a.kind = 'shot_render'
JOIN versions v ON v.asset_id = a.id AND v.number = CASE WHEN %(policy)s = 'approved'
                                                       THEN coalesce(a.approved_number, a.latest_number)
                                                       ELSE a.latest_number END
ORDER BY s.id, (a.name = 'shots/' || s.code || '/main') DESC, a.name
""".replace("IMAGE", _IMAGE)
_BY_ID = _CURRENT_SQL.replace("WANTED", "FROM unnest(CAST(%(shot_ids)s AS integer[])) AS wanted(id)\n"
                                         "JOIN shots s ON s.id = wanted.id")
_BY_CODE = _CURRENT_SQL.replace("WANTED", "FROM unnest(CAST(%(shot_codes)s AS text[])) AS wanted(code)\n"
                                           "JOIN shots s ON s.project_id = %(project_id)s AND s.code = wanted.code")


def current_shot_versions(session: Session, shot_ids: Iterable[int], policy: str = "approved", *,
                          media: bool = True, movies: bool = False) -> dict[int, ShotVersion]:
    """Per shot: its render (asset `shots/CODE/main` first, else the first by name) at the policy's version.

    `approved`: the approved version, else the latest; `latest`: the latest. With `media`, the
    version's image sequence (its first numbered image run in name order) is found, and its
    movie when it has no sequence or `movies` is asked for.
    """
    ids = sorted(set(shot_ids))
    if not ids:
        return {}
    rows = fetch_custom_plan(session, *current_versions_query(ids, policy, media=media, movies=movies))
    return {v.shot_id: v for v in shot_versions_of(rows)}


def current_versions_query(shot_ids: list[int], policy: str = "approved", *, media: bool = True,
                           movies: bool = False) -> tuple[str, dict[str, Any]]:
    """The query of current_shot_versions, to run with fetch_custom_plan(s); its rows go to shot_versions_of."""
    return _BY_ID, {"shot_ids": shot_ids, "policy": policy, "media": media, "movies": movies}


def current_versions_by_code_query(project_id: int, shot_codes: list[str], policy: str = "approved", *,
                                   movies: bool = False) -> tuple[str, dict[str, Any]]:
    """current_versions_query (with media) for the shots of a project with these codes (found by the query)."""
    return _BY_CODE, {"project_id": project_id, "shot_codes": shot_codes, "policy": policy, "media": True,
                      "movies": movies}


def shot_versions_of(rows: list[tuple[Any, ...]]) -> list[ShotVersion]:
    """The rows of current_versions_query as ShotVersions: each shot's first row."""
    found: list[ShotVersion] = []
    last_shot = None
    for shot_id, shot, asset, version_id, number, status, content_hash, frame_range, ref, first_image, last_image, \
            movie in rows:
        if shot_id == last_shot:
            continue  # rows come by shot, its main render first
        last_shot = shot_id
        coverage = _coverage_of_text(frame_range)
        found.append(ShotVersion(shot_id, shot, asset, version_id, ref, number, status, content_hash, coverage,
                                 _sequence_of(first_image, last_image, coverage), movie_of(movie, coverage)))
    return found


@lru_cache(maxsize=4096)
def _coverage_of_text(frame_range: str | None) -> Coverage:
    """coverage_of for `metadata -> 'frame_range'` as jsonb text; the usual `[first, last]` without a JSON parse.

    Cached: renders of a cut share a few ranges (and Coverage is immutable).
    """
    if frame_range is None:
        return Coverage(False)
    pair = _JSONB_PAIR.match(frame_range)
    if pair:
        return coverage_of({"frame_range": [int(pair.group(1)), int(pair.group(2))]})
    return coverage_of({"frame_range": json.loads(frame_range)})


def sequence_of(first: str | None, last: str | None, coverage: Coverage) -> Media | None:
    """An image sequence from its first file's name (zero-padded frame numbers) and its length:
    the version's frame range, else its last file's name."""
    if first is None:
        return None
    folder, _, base = first.rpartition("/")
    head = _FRAME_FILE.match(base)
    if head is None:
        return None
    start = int(head.group("frame"))
    if coverage.first is not None and coverage.last is not None:
        end = start + coverage.last - coverage.first
    else:
        tail = _FRAME_FILE.match(last.rpartition("/")[2]) if last else None
        if tail is None:
            return None
        end = int(tail.group("frame"))
    return Media("image_sequence", folder, head.group("prefix"), head.group("suffix"), len(head.group("frame")),
                 start, end)


_sequence_of = lru_cache(maxsize=4096)(sequence_of)  # renders share a few first file names and ranges


def movie_of(movie: str | None, coverage: Coverage) -> Media | None:
    """A movie's frames are placed by the version's frame_range: without one it is not used."""
    if movie is None or coverage.first is None:
        return None
    return Media("movie", movie.rpartition("/")[0], start_frame=coverage.first, file=movie)


def shot_frames_held(version: ShotVersion) -> Coverage:
    """The shot frames a version holds: its frame_range, else (image files numbered in shot frames) its files."""
    if version.coverage.known or version.sequence is None:
        return version.coverage
    return Coverage(True, version.sequence.start_frame, version.sequence.last_frame)


class Impact(NamedTuple):  # a named tuple: an import makes one per shot, thousands
    """Whether a shot's new cut range (with handles) is inside the frames its current version holds."""

    needs_render: bool | None  # None: the version records no frame range
    why: str
    version: str | None = None
    covers: str | None = None
    needs: str | None = None
    missing_head: int = 0
    missing_tail: int = 0

    def to_dict(self) -> dict[str, Any]:  # plain fields: no need for the generic (slower) conversion
        return {"needs_render": self.needs_render, "why": self.why, "version": self.version, "covers": self.covers,
                "needs": self.needs, "missing_head": self.missing_head, "missing_tail": self.missing_tail}


def impact_of(version: ShotVersion | None, need_first: int, need_last: int) -> Impact:
    needs = f"{need_first}-{need_last}"
    if version is None:
        return Impact(True, "no version yet", needs=needs)
    cov = version.coverage
    if not cov.known:
        return Impact(None, f"{version.ref} records no frame range", version.ref, None, needs)
    if cov.first is None or cov.last is None:
        return Impact(True, f"{version.ref} has a malformed frame_range", version.ref, "malformed", needs)
    if cov.covers(need_first, need_last):
        return Impact(False, f"{version.ref} covers {cov.label()}", version.ref, cov.label(), needs)
    head, tail = max(0, cov.first - need_first), max(0, need_last - cov.last)
    gaps = [f"{head} frame(s) before" if head else "", f"{tail} frame(s) after" if tail else ""]
    return Impact(True, f"needs {needs}, {version.ref} covers {cov.label()} "
                        f"({' and '.join(g for g in gaps if g)})", version.ref, cov.label(), needs, head, tail)
