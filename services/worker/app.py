"""The Celery app: queues `gpu` (train, render) and `cpu` (ingest, media, sync).

Settings that make a lost worker lose no work: late acks (a message is acknowledged when the
task ends, not when it starts), reject on worker loss, prefetch 1 (a worker holds one job at a
time), hard and soft time limits, and a broker visibility timeout longer than the longest task.
Job state lives in PostgreSQL, so no result backend is needed.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from celery import Celery
from kombu import Exchange, Queue

if TYPE_CHECKING:
    from backlot.config import Settings

TASK_TIME_LIMIT = int(os.environ.get("BACKLOT_TASK_TIME_LIMIT", 6 * 3600))


def create_app(settings: Settings | None = None) -> Celery:
    """The app; its broker comes from BROKER_URL, else `settings`' database (default: the
    environment's), resolved when the app is first used to send or consume, not on import."""
    app = Celery("backlot", include=["backlot.services.worker.tasks"])
    app.add_defaults(lambda: _broker_settings(settings))
    app.conf.update(
        task_queues=[Queue("gpu", Exchange("gpu"), routing_key="gpu"), Queue("cpu", Exchange("cpu"), routing_key="cpu")],
        task_default_queue="cpu",
        task_routes={"backlot.run_job": {"queue": "gpu"}},
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=TASK_TIME_LIMIT,
        task_soft_time_limit=TASK_TIME_LIMIT - 60,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        task_serializer="json",
        accept_content=["json"],
    )
    return app


def _broker_settings(settings: Settings | None) -> dict:
    from backlot.services.worker.broker import broker_url, is_embedded

    url = broker_url(settings)
    # The SQLAlchemy transport hands its options to create_engine, so only real brokers get them.
    options = {} if is_embedded(url) else {"visibility_timeout": TASK_TIME_LIMIT + 3600}
    return {"broker_url": url, "broker_transport_options": options}


app = create_app()
