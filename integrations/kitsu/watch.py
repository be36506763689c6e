"""`backlot kitsu watch`: stay in sync. One full sync, then a pull each time Kitsu's event
stream says a comment was posted, and a pull every `poll_seconds` anyway (events sent while
the stream was down are not replayed)."""

from __future__ import annotations

import threading
from typing import Callable

from backlot.integrations.kitsu.client import Kitsu
from backlot.integrations.kitsu.links import get_link, load_credentials
from backlot.integrations.kitsu.sync import SyncReport, sync_project
from backlot.db.engine import session_scope


def watch_project(project: str, *, poll_seconds: float = 60.0, stop: threading.Event | None = None,
                  on_report: Callable[[SyncReport, str], None] | None = None,
                  listening: threading.Event | None = None) -> None:
    """Run until `stop` is set; `on_report(report, why)` after each sync ("start", "event", "poll")."""
    stop = stop or threading.Event()
    report = on_report or (lambda *_: None)
    report(sync_project(project), "start")
    with session_scope() as s:
        link = get_link(s, project)
    wake, why = threading.Event(), {"it": "poll"}

    def on_comment(_data: dict) -> None:
        why["it"] = "event"
        wake.set()

    stream = Kitsu(link.url, load_credentials(link), link.events_url).listen("comment:new", on_comment)
    if listening is not None and stream is not None:
        listening.set()
    try:
        while not stop.is_set():
            if not _wait(wake, stop, poll_seconds) and stop.is_set():
                break
            wake.clear()
            reason, why["it"] = why["it"], "poll"
            report(sync_project(project, push=False), reason)
    finally:
        if stream is not None:
            stream.disconnect()


def _wait(wake: threading.Event, stop: threading.Event, seconds: float) -> bool:
    """Wait for `wake` up to `seconds`, looking at `stop` every half second; True when woken."""
    remaining = seconds
    while remaining > 0 and not stop.is_set():
        if wake.wait(min(0.5, remaining)):
            return True
        remaining -= 0.5
    return False
