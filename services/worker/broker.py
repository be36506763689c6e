"""Which broker: BROKER_URL (Redis or RabbitMQ across machines), else the database itself.

The embedded default is kombu's SQLAlchemy transport on Backlot's own PostgreSQL: nothing
more to install or start, and messages are as durable as the database. Its weakness — a
message taken by a worker that is then killed is not redelivered by the transport — does
not lose work here, because jobs live in PostgreSQL and the dispatcher re-sends any job
whose worker stopped beating. It polls; Backlot polls every 0.1 s instead of kombu's 1 s.
"""

from __future__ import annotations

import os

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport.sqlalchemy import Transport as SQLAlchemyTransport

from pipeline.config import load_settings
from pipeline.db.engine import resolve_url

POLLING_INTERVAL = 0.1


class PostgresTransport(SQLAlchemyTransport):
    """kombu's SQLAlchemy transport, polling faster (the option cannot be passed through:
    the transport hands all its options to create_engine)."""

    polling_interval = POLLING_INTERVAL


TRANSPORT_ALIASES.setdefault("backlotpg", "services.worker.broker:PostgresTransport")


def broker_url() -> str:
    if url := os.environ.get("BROKER_URL"):
        return url
    return "backlotpg+" + resolve_url(load_settings())


def is_embedded(url: str) -> bool:
    return url.startswith("backlotpg+")
