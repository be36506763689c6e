"""HTTP access tables (API tokens, webhooks, deliveries): filled in by the HTTP API work."""

from __future__ import annotations

from pipeline.db.models import Base  # noqa: F401 - models here register on the shared metadata
