"""Waiting out an outage: exponential backoff with jitter, and the one outage that will not end."""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass, field

from backlot.config import load_settings

log = logging.getLogger("backlot.worker")


@dataclass
class Backoff:
    """Delays of first, 2x first, 4x first ... up to `cap` seconds, each drawn from the upper
    half of its step (jitter: workers that lost the same server do not return in lockstep)."""

    first: float = 1.0
    cap: float = 60.0
    _step: float = field(default=0.0, repr=False)

    def next_delay(self) -> float:
        self._step = self.first if not self._step else min(self._step * 2, self.cap)
        return random.uniform(self._step / 2, self._step)

    def reset(self) -> None:
        self._step = 0.0


def embedded_database_gone() -> str | None:
    """Why waiting is pointless: the embedded database's folder no longer exists (its
    BACKLOT_HOME was removed). None when the database may come back."""
    settings = load_settings()
    folder = settings.home / "postgres"
    if settings.embedded and not (folder / "data" / "PG_VERSION").is_file():
        return (f"the embedded database at {folder} is gone (its folder was removed): the worker stops. "
                "Start it again once BACKLOT_HOME is restored, or point DATABASE_URL at a server.")
    return None


def listen_until(stop: threading.Event, connect, channel: str, on_notify, *, what: str,
                 on_up=None, on_down=None) -> None:
    """LISTEN on `channel` until `stop`, calling `on_notify()` for each NOTIFY. A lost
    connection is logged once (and its return once) and retried with backoff."""
    backoff, down = Backoff(), False
    while not stop.is_set():
        try:
            with connect() as conn:
                conn.execute(f"LISTEN {channel}")
                if down:
                    log.warning("%s LISTEN connection back", what)
                backoff.reset()
                down = False
                if on_up:
                    on_up()
                while not stop.is_set():
                    for _notify in conn.notifies(timeout=1.0):
                        on_notify()
        except Exception as exc:  # noqa: BLE001 - the database restarting, a network blip
            if not down:
                log.warning("%s LISTEN connection lost, retrying with backoff: %s", what,
                            str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
            down = True
        if on_down:
            on_down()
        stop.wait(backoff.next_delay())
