"""Settings of the HTTP API: limits, webhook delivery, database pool."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from backlot.access.webhooks import RetryPolicy
from backlot.config import Settings, load_settings

MiB = 1 << 20


@dataclass(frozen=True)
class WebhookSettings:
    enabled: bool = True
    poll_interval_s: float = 2.0
    timeout_s: float = 5.0  # per request: a hanging subscriber costs one worker this long, no more
    per_subscriber: int = 20  # deliveries claimed per subscriber and pass
    workers: int = 8  # subscribers served in parallel
    settle: timedelta = timedelta(minutes=5)
    retry: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass(frozen=True)
class ApiSettings:
    backlot: Settings = field(default_factory=load_settings)
    max_json_bytes: int = 1 * MiB
    max_upload_bytes: int = 1024 * MiB
    pool_size: int = 16
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
