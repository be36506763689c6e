"""Records to response bodies. References into another project are hidden: a token sees one project."""

from __future__ import annotations

from backlot.lineage import LineageEdge, StaleVersion
from backlot.tracker.records import VersionRecord
from backlot.services.api.schemas import FileOut, InputOut, StaleOut, StaleReasonOut, VersionOut


def media_url(project: str, sha256: str) -> str:
    return f"/api/projects/{project}/media/{sha256}"


def visible(ref: str | None, project: str) -> str | None:
    return ref if ref is not None and ref.startswith(f"{project}/") else None


def version_out(v: VersionRecord) -> VersionOut:
    files = [FileOut(path=f.path, sha256=f.sha256, size=f.size, url=media_url(v.project, f.sha256)) for f in v.files]
    inputs = [InputOut(role=i.role, ref=visible(i.ref, v.project),
                       version_id=i.version_id if visible(i.ref, v.project) else None) for i in v.inputs]
    return VersionOut(id=v.id, ref=v.ref, asset=v.asset, kind=v.kind, number=v.number, status=v.status,
                      content_hash=v.content_hash, media_type=v.media_type, created_by=v.created_by,
                      created_at=v.created_at, metadata=v.metadata, recipe=v.recipe, recipe_sha256=v.recipe_sha256,
                      files=files, inputs=inputs, reused=v.reused)


def edge_visible(edge: LineageEdge, project: str) -> bool:
    return visible(edge.version, project) is not None and visible(edge.input, project) is not None


def stale_out(s: StaleVersion, project: str) -> StaleOut:
    hidden = "(another project)"
    cause = getattr(s.reason, "cause", "superseded")  # "cut": the root misses frames of its shot's cut
    by = s.reason.superseded_by if cause != "superseded" else \
        visible(s.reason.superseded_by, project) or (hidden if s.reason.superseded_by else None)
    cut = getattr(s.reason, "cut", None)
    reason = StaleReasonOut(input=visible(s.reason.input, project) or hidden, role=s.reason.role, superseded_by=by,
                            path=[visible(p, project) or hidden for p in s.reason.path], cause=cause,
                            cut=cut.to_dict() if hasattr(cut, "to_dict") else None)
    return StaleOut(id=s.id, ref=s.ref, asset=s.asset, kind=s.kind, number=s.number, status=s.status, reason=reason,
                    awaiting_review=s.awaiting_review)
