"""Training-data clearance: the rights of concept art (owner, licence, consent to train), the
check before an adapter is trained, and the report a producer can send.

Art whose owner said no (consent 'no') is never trained on without an explicit override.
Where the project requires clearance (`backlot provenance policy PROJECT --require-clearance`),
anything not cleared to train ('unknown', or no rights recorded) is refused as well. An
override names a reason and is recorded on the adapter it made (its metadata:
`clearance_override`), so the report shows it wherever that adapter went.
"""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from backlot.config import load_settings
from backlot.db.provenance import CONSENT_VALUES, ArtRights, ProvenancePolicy
from backlot.errors import InvalidInputError, NotFoundError, article
from backlot.lineage import get_inputs
from backlot.tracker import VersionRecord, get_version
from backlot.tracker.projects import find_project

RIGHTS_KINDS = ("concept_art", "reference", "base_model")
TRAINABLE = "yes"


@dataclass(frozen=True)
class Rights:
    owner: str
    licence: str
    consent: str  # yes / no / unknown
    note: str
    set_by: str
    set_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "set_at": self.set_at.isoformat()}


@dataclass(frozen=True)
class ClearanceOverride:
    """A decision to train past a clearance refusal: why and who decided. One carried from an
    earlier adapter (a retrain) covers only the pieces it was recorded for (`covers`, refs)."""

    reason: str
    by: str | None = None
    covers: tuple[str, ...] | None = None  # None: whatever blocks now
    carried_from: str | None = None


def carried_override(adapter: VersionRecord) -> ClearanceOverride | None:
    """The override recorded on an adapter, to replay when it is retrained."""
    record = adapter.metadata.get("clearance_override")
    if not record:
        return None
    return ClearanceOverride(record["reason"], record.get("by"), tuple(b["ref"] for b in record.get("blocked", [])),
                             adapter.ref)


class ClearanceError(InvalidInputError):
    """Training refused: the art listed is not cleared to train."""

    def __init__(self, message: str, blocked: list[dict[str, str]]):
        super().__init__(message)
        self.blocked = blocked


def set_rights(session: Session, ref: str, *, owner: str, licence: str, consent: str, note: str = "",
               actor: str | None = None) -> Rights:
    """Record the rights of a concept-art, reference or base-model version (the previous stay as history)."""
    version = get_version(session, ref)
    if version.kind not in RIGHTS_KINDS:
        raise InvalidInputError(f"{version.ref} is {article(version.kind)}: rights are recorded on concept art, "
                                "references and base models (what a generated version inherits)")
    consent = consent.strip().lower()
    if consent not in CONSENT_VALUES:
        raise InvalidInputError(f"--consent {consent!r}: use one of {', '.join(CONSENT_VALUES)}")
    if not owner.strip() or not licence.strip():
        raise InvalidInputError("--owner and --licence must not be empty (write 'unknown' if it is not known)")
    row = ArtRights(version_id=version.id, owner=owner.strip(), licence=licence.strip(), consent=consent, note=note,
                    set_by=actor or load_settings().user)
    session.add(row)
    session.flush()
    session.refresh(row)
    return _rights(row)


def get_rights(session: Session, version_id: int) -> Rights | None:
    row = session.scalar(select(ArtRights).where(ArtRights.version_id == version_id).order_by(ArtRights.id.desc())
                         .limit(1))
    return _rights(row) if row else None


def rights_history(session: Session, ref: str) -> list[Rights]:
    version = get_version(session, ref)
    rows = session.scalars(select(ArtRights).where(ArtRights.version_id == version.id).order_by(ArtRights.id))
    return [_rights(r) for r in rows]


def _rights(row: ArtRights) -> Rights:
    return Rights(row.owner, row.licence, row.consent, row.note, row.set_by, row.set_at)


def clearance_required(session: Session, project: str) -> bool:
    policy = session.get(ProvenancePolicy, find_project(session, project).id)
    return bool(policy and policy.require_clearance)


def check_training_clearance(session: Session, arts: Sequence[VersionRecord], *,
                             override: str | ClearanceOverride | None = None, actor: str | None = None) -> dict[str, Any]:
    """Refuse training on art not cleared to train (ClearanceError lists every piece that blocks);
    with `override` (a reason), allow it and return the record to keep on the adapter's metadata."""
    strict = bool(arts) and clearance_required(session, arts[0].project)
    blocked = []
    for art in arts:
        rights = get_rights(session, art.id)
        consent = rights.consent if rights else "not recorded"
        if consent == "no" or (strict and consent != TRAINABLE):
            blocked.append({"ref": art.ref, "consent": consent, "owner": rights.owner if rights else "unknown"})
    if not blocked:
        return {}
    if isinstance(override, str):
        override = ClearanceOverride(override)
    if override is None or not override.reason.strip():
        raise ClearanceError(f"training refused, not cleared to train: {_listing(blocked)}. Record consent with "
                             "`backlot rights set REF --consent yes ...`, train without that art, or override with "
                             "--override-clearance REASON (recorded on the adapter)", blocked)
    uncovered = [b for b in blocked if override.covers is not None and b["ref"] not in override.covers]
    if uncovered:
        raise ClearanceError(f"training refused, not cleared to train: {_listing(uncovered)}. The override recorded "
                             f"on {override.carried_from} covers only {', '.join(override.covers or ()) or 'nothing'}: "
                             "record consent with `backlot rights set REF --consent yes ...`, or train it again with "
                             "`backlot adapter train ... --override-clearance REASON`", uncovered)
    record = {"reason": override.reason.strip(), "by": override.by or actor or load_settings().user,
              "at": datetime.now().astimezone().isoformat(timespec="seconds"), "blocked": blocked}
    if override.carried_from:
        record["carried_from"] = override.carried_from
    return {"clearance_override": record}


def _listing(blocked: list[dict[str, str]]) -> str:
    return "; ".join(f"{b['ref']} (consent to train: {b['consent']}, owner: {b['owner']})" for b in blocked)


# -- the report -------------------------------------------------------------------------------


@dataclass(frozen=True)
class UpstreamPiece:
    ref: str
    kind: str
    role: str  # how the nearest downstream piece used it
    used_by: str
    depth: int
    content_hash: str
    rights: Rights | None
    override: dict[str, Any] | None  # an adapter trained past a clearance refusal

    @property
    def issue(self) -> str | None:
        if self.override:
            return f"trained over a clearance refusal: {self.override.get('reason')}"
        if self.kind in ("concept_art", "reference"):
            if self.rights is None:
                return "no rights recorded"
            if self.rights.consent != TRAINABLE and self.role == "training_data":
                return f"consent to train: {self.rights.consent}"
        if self.kind == "base_model" and self.rights is None:
            return "licence not recorded"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"ref": self.ref, "kind": self.kind, "role": self.role, "used_by": self.used_by, "depth": self.depth,
                "content_hash": self.content_hash, "rights": self.rights.to_dict() if self.rights else None,
                "override": self.override, "issue": self.issue}


@dataclass(frozen=True)
class ClearanceReport:
    ref: str
    project: str
    pieces: list[UpstreamPiece]
    made_at: datetime

    @property
    def cleared(self) -> bool:
        return all(p.issue is None for p in self.pieces)

    def to_dict(self) -> dict[str, Any]:
        return {"ref": self.ref, "project": self.project, "cleared": self.cleared,
                "made_at": self.made_at.isoformat(timespec="seconds"), "pieces": [p.to_dict() for p in self.pieces]}


def resolve_shot_ref(session: Session, ref: str) -> VersionRecord:
    """A version ref, or PROJECT/SHOT for the shot's current render (approved, else latest)."""
    if "@" in ref or ref.count("/") != 1:
        return get_version(session, ref)
    project, shot = ref.split("/")
    for selector in ("approved", "latest"):
        try:
            return get_version(session, f"{project}/shots/{shot}/main@{selector}")
        except NotFoundError:
            continue
    raise NotFoundError(f"shot {ref!r} has no render yet: give a version ref (PROJECT/ASSET@N)")


def clearance_report(session: Session, ref: str) -> ClearanceReport:
    """Every piece upstream of a version (production lineage, transitively) with its rights."""
    version = resolve_shot_ref(session, ref)
    edges = get_inputs(session, version.id, transitive=True)
    seen: dict[int, UpstreamPiece] = {}
    for edge in edges:
        if edge.input_id in seen:
            continue
        piece = get_version(session, edge.input_id)
        override = piece.metadata.get("clearance_override") if piece.kind == "adapter" else None
        seen[edge.input_id] = UpstreamPiece(piece.ref, piece.kind, edge.role, edge.version, edge.depth,
                                            piece.content_hash, get_rights(session, piece.id), override)
    return ClearanceReport(version.ref, version.project, list(seen.values()), datetime.now().astimezone())


def report_text(report: ClearanceReport) -> list[str]:
    lines = [f"Clearance of {report.ref}: " + ("every upstream piece is cleared" if report.cleared
                                                else "NOT cleared")]
    for p in report.pieces:
        rights = (f"owner {p.rights.owner}; licence {p.rights.licence}; consent to train {p.rights.consent}"
                  if p.rights else "no rights recorded")
        lines.append(f"  {p.ref} ({p.kind}, {p.role} of {p.used_by}): {rights}"
                     + (f"  <- {p.issue}" if p.issue else ""))
    return lines


def report_html(report: ClearanceReport) -> str:
    """A one-page, self-contained HTML report (print it to PDF from any browser)."""
    e = html.escape
    rows = "".join(
        f"<tr class='{'issue' if p.issue else ''}'><td>{e(p.ref)}</td><td>{e(p.kind)}</td>"
        f"<td>{e(p.role)} of {e(p.used_by)}</td>"
        f"<td>{e(p.rights.owner) if p.rights else '&mdash;'}</td><td>{e(p.rights.licence) if p.rights else '&mdash;'}</td>"
        f"<td>{e(p.rights.consent) if p.rights else 'not recorded'}</td><td>{e(p.issue or 'cleared')}</td>"
        f"<td class='hash'>{e(p.content_hash[:16])}</td></tr>"
        for p in report.pieces)
    verdict = "Every upstream piece is cleared." if report.cleared else "Not cleared: see the highlighted rows."
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Clearance: {e(report.ref)}</title>
<style>
@page {{ size: A4 landscape; margin: 12mm; }}
body {{ font: 10pt/1.35 system-ui, sans-serif; color: #111; margin: 0 auto; max-width: 270mm; }}
h1 {{ font-size: 15pt; margin: 0 0 2mm; }}
p {{ margin: 0 0 3mm; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border-bottom: 1px solid #ccc; padding: 1.2mm 2mm; text-align: left; vertical-align: top; }}
th {{ background: #f0f0f0; }}
tr.issue td {{ background: #fde8e8; }}
.hash {{ font-family: ui-monospace, monospace; font-size: 8.5pt; }}
.verdict {{ font-weight: 600; }}
</style></head><body>
<h1>Training-data clearance: {e(report.ref)}</h1>
<p>Project {e(report.project)} &middot; made by Backlot on {e(report.made_at.strftime('%Y-%m-%d %H:%M %Z'))} &middot;
{len(report.pieces)} upstream pieces</p>
<p class="verdict">{e(verdict)}</p>
<table><thead><tr><th>Version</th><th>Kind</th><th>Used as</th><th>Owner</th><th>Licence</th>
<th>Consent to train</th><th>Status</th><th>Content hash</th></tr></thead>
<tbody>{rows}</tbody></table>
</body></html>
"""
