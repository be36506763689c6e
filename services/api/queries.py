"""Read models for the review page: a constant number of queries per page, whatever its size."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

import backlot
from backlot.db.models import Sequence, Shot
from backlot.services.api.convert import media_url, visible
from backlot.services.api.schemas import ContactSheetItem, Page, ShotOut

IMAGE_RE = r"\.(png|jpe?g|gif|webp|svg|avif|bmp)$"
THUMB_RE = r"(^|/)thumb(nail)?\.[^/]*$"

_SHEET_SQL = text("""
SELECT sh.id, sh.code, seq.code AS sequence, sh.cut_in, sh.cut_out, sh.handles, sh.editorial_order,
       a.name AS asset, a.approved_number, v.id AS version_id, v.number, v.status::text AS status
FROM shots sh
LEFT JOIN sequences seq ON seq.id = sh.sequence_id
LEFT JOIN LATERAL (
    SELECT a.id, a.name, a.latest_number, a.approved_number FROM assets a
    WHERE a.shot_id = sh.id AND a.latest_number > 0
    ORDER BY (a.kind = 'shot_render') DESC, (a.name LIKE '%/main') DESC, a.name LIMIT 1
) a ON true
LEFT JOIN versions v ON v.asset_id = a.id AND v.number = a.latest_number
WHERE sh.project_id = :project_id AND (CAST(:sequence AS text) IS NULL OR seq.code = :sequence)
ORDER BY sh.editorial_order NULLS LAST, sh.code
LIMIT :limit OFFSET :offset
""")

# The thumbnail of each version: a file named thumbnail.* / thumb.*, else its first image.
_THUMBS_SQL = text(f"""
SELECT DISTINCT ON (version_id) version_id, path, sha256 FROM version_files
WHERE version_id = ANY(:ids) AND lower(path) ~ '{IMAGE_RE}'
ORDER BY version_id, (lower(path) ~ '{THUMB_RE}') DESC, path
""")


@dataclass(frozen=True)
class StaleInfo:
    reason: str


def stale_map(session: Session, project: str) -> dict[int, StaleInfo]:
    """Stale current versions of the project by id, with a one-line reason."""
    result = {}
    for s in backlot.find_stale_versions(session, project):
        source = visible(s.reason.input, project) or "an input of another project"
        if getattr(s.reason, "cause", "superseded") == "cut":
            result[s.id] = StaleInfo(f"{source} does not cover its shot's cut: {s.reason.superseded_by}")
            continue
        by = visible(s.reason.superseded_by, project) or "a newer version"
        result[s.id] = StaleInfo(f"{source} is superseded by {by}")
    return result


def thumbnails(session: Session, project: str, version_ids: list[int]) -> dict[int, str]:
    if not version_ids:
        return {}
    rows = session.execute(_THUMBS_SQL, {"ids": version_ids})
    return {r.version_id: media_url(project, r.sha256) for r in rows}


def contact_sheet(session: Session, project: str, project_id: int, sequence: str | None, limit: int,
                  offset: int) -> Page[ContactSheetItem]:
    count = select(func.count()).select_from(Shot).where(Shot.project_id == project_id)
    if sequence is not None:
        count = count.join(Sequence, Sequence.id == Shot.sequence_id).where(Sequence.code == sequence)
    total = session.scalar(count) or 0
    rows = session.execute(_SHEET_SQL, {"project_id": project_id, "sequence": sequence, "limit": limit,
                                        "offset": offset}).all()
    thumbs = thumbnails(session, project, [r.version_id for r in rows if r.version_id])
    stale = stale_map(session, project) if rows else {}
    items = []
    for r in rows:
        flag = stale.get(r.version_id) if r.version_id else None
        items.append(ContactSheetItem(
            shot=ShotOut(id=r.id, code=r.code, sequence=r.sequence, cut_in=r.cut_in, cut_out=r.cut_out,
                         handles=r.handles, editorial_order=r.editorial_order),
            asset=r.asset, version_id=r.version_id, number=r.number, status=r.status,
            approved_number=r.approved_number, stale=flag is not None, stale_reason=flag.reason if flag else None,
            thumbnail=thumbs.get(r.version_id) if r.version_id else None))
    return Page[ContactSheetItem](items=items, total=total, limit=limit, offset=offset)
