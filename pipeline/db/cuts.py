"""Editorial tables (cut revisions, cut items, change lists): filled in by the editorial work."""

from __future__ import annotations

from pipeline.db.models import Base  # noqa: F401 - models here register on the shared metadata
