"""The plugin's resolve cache, kept coherent by the database.

What a reference resolves to (the fast path's finished row: kind, location, tags, names) is
kept per canonical reference string:

- `?v=N` names an immutable version: its row is kept until the cache is full or the database
  says something was deleted or renamed (`*`).
- `latest` and `approved` are meta-versions: their rows are kept only while the listener is
  live (its LISTEN connection answered within `STALE_AFTER` seconds) and dropped when the
  database announces that the asset's pointers moved (`backlot_refs`, migration
  0009_openassetio_notify, payload: the asset id). A listener that is down means no meta
  row is served or stored: every such resolve reads the database.
- Writes made in this process through the ORM (`backlot.publish_version`, `set_status`, and
  the plugin's own `register`) invalidate at commit, before the call returns, without waiting
  for the notification.

Rows fetched by a query that began before an invalidation are not stored (a generation
counter), and a resolve whose meta rows were fetched across an invalidation fetches them
again, so a resolve never returns data older than the last invalidation this process has
received.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any

log = logging.getLogger(__name__)

CHANNEL = "backlot_refs"
APPLICATION_NAME = "backlot-openassetio-listen"  # how the LISTEN connection shows in pg_stat_activity
PING_EVERY = 0.5  # seconds between liveness checks of the LISTEN connection
STALE_AFTER = 1.5  # a listener not heard from for this long is treated as down
MAX_ENTRIES = 250_000  # per map; a full cache is emptied (bounded memory, no LRU bookkeeping per hit)
META_TAGS = frozenset({"latest", "approved"})


class RefCache:
    """Rows by reference string: `stable` (?v=N) and `meta` (latest, approved, by asset id)."""

    def __init__(self) -> None:
        self.stable: dict[str, tuple] = {}
        self.meta: dict[str, tuple] = {}
        self._meta_keys: dict[int, list[str]] = {}  # asset id -> its meta keys
        self.generation = 0  # bumped by every invalidation (meta rows)
        self.flushes = 0  # bumped when everything is dropped (stable rows too)
        self.live_until = 0.0  # monotonic time until which meta rows may be used
        self._lock = threading.Lock()

    # -- reads (no lock: dict lookups are atomic) ---------------------------------------

    def meta_usable(self) -> bool:
        return time.monotonic() < self.live_until

    # -- writes ---------------------------------------------------------------------------

    def store(self, keys: Sequence[str], rows: Iterable[tuple], generation: int, flushes: int) -> None:
        """Keep fast-path rows (row[0]: the index of its reference in `keys`) fetched by a query
        begun at (generation, flushes): rows from before an invalidation are dropped, meta rows
        also while the listener is down."""
        with self._lock:
            if flushes != self.flushes:
                return
            meta_ok = generation == self.generation and self.meta_usable()
            stable, meta, by_asset = self.stable, self.meta, self._meta_keys
            if len(stable) >= MAX_ENTRIES or len(meta) >= MAX_ENTRIES:
                stable.clear()
                meta.clear()
                by_asset.clear()
            for row in rows:
                if row[6] not in META_TAGS:  # the specified tag: a number
                    stable[keys[row[0]]] = row
                elif meta_ok:
                    key = keys[row[0]]
                    meta[key] = row
                    keys_of = by_asset.get(row[-1])
                    if keys_of is None:
                        by_asset[row[-1]] = [key]
                    else:
                        keys_of.append(key)

    def invalidate(self, asset_ids: Iterable[int]) -> None:
        """The pointers of these assets moved: drop their meta rows."""
        with self._lock:
            self.generation += 1
            for asset_id in asset_ids:
                for key in self._meta_keys.pop(asset_id, ()):
                    self.meta.pop(key, None)

    def clear_meta(self) -> None:
        with self._lock:
            self.generation += 1
            self.meta.clear()
            self._meta_keys.clear()

    def clear(self) -> None:
        with self._lock:
            self.generation += 1
            self.flushes += 1
            self.meta.clear()
            self._meta_keys.clear()
            self.stable.clear()

    def handle(self, payload: str) -> None:
        """One `backlot_refs` notification: an asset id, or `*` for everything."""
        if payload.isdigit():
            self.invalidate((int(payload),))
        else:
            self.clear()

    def set_live(self, live: bool) -> None:
        if live:
            self.live_until = time.monotonic() + STALE_AFTER
        else:
            self.live_until = 0.0
            self.clear_meta()


class Listener:
    """LISTEN `backlot_refs` on its own connection, in a daemon thread, for one cache.

    Connected, it pings every PING_EVERY seconds (a dead or half-open connection is noticed
    within STALE_AFTER, and meanwhile the cache stops serving meta rows on its own); on
    (re)connecting, meta rows are dropped, since notifications may have been missed. The
    thread stops when `stop` is called or the cache's owner is garbage collected.
    """

    def __init__(self, connect: Callable[[], Any], cache: RefCache) -> None:
        self._connect = connect
        self._cache = cache
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="backlot-openassetio-listen", daemon=True)

    def start(self, wait: float = 2.0) -> None:
        """Start listening; wait (bounded) for the first connection, so a fresh manager caches at once."""
        self._thread.start()
        deadline = time.monotonic() + wait
        while not self._cache.meta_usable() and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.005)

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        delay = 0.25
        cache = self._cache
        while not self._stop.is_set():
            try:
                with self._connect(application_name=APPLICATION_NAME) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    cache.clear_meta()  # anything cached before may have missed a notification
                    cache.set_live(True)
                    delay = 0.25
                    while not self._stop.is_set():
                        for notify in conn.notifies(timeout=PING_EVERY):
                            cache.handle(notify.payload)
                        conn.execute("SELECT 1")  # the connection still answers
                        cache.set_live(True)
            except Exception as exc:  # noqa: BLE001 - server restart, dropped database: bypass, retry
                cache.set_live(False)
                if not self._stop.is_set():
                    log.info("Backlot OpenAssetIO cache: LISTEN lost (%s); meta-versions bypass the cache", exc)
            cache.set_live(False)
            self._stop.wait(delay)
            delay = min(delay * 2, 5.0)


# -- in-process invalidation --------------------------------------------------------------

_caches: weakref.WeakSet[RefCache] = weakref.WeakSet()
_hooked = False
_KEY = "backlot_openassetio_assets"


def register_cache(cache: RefCache) -> None:
    """Let ORM commits in this process invalidate `cache` at once (the NOTIFY comes later)."""
    global _hooked
    _caches.add(cache)
    if _hooked:
        return
    from sqlalchemy import event, inspect
    from sqlalchemy.orm import Session

    from backlot.db.models import Asset, Version

    def after_flush(session: Session, _context: Any) -> None:
        touched = None
        for obj in session.new:
            if isinstance(obj, Version):
                touched = touched if touched is not None else session.info.setdefault(_KEY, set())
                touched.add(obj.asset_id)
        for obj in session.dirty:
            if isinstance(obj, Version) and inspect(obj).attrs.status.history.has_changes():
                touched = touched if touched is not None else session.info.setdefault(_KEY, set())
                touched.add(obj.asset_id)
        if any(isinstance(obj, (Version, Asset)) for obj in session.deleted):
            session.info[_KEY] = {-1}

    # A rolled-back savepoint keeps its assets in the set: invalidating too much is harmless.
    def after_commit(session: Session) -> None:
        touched = session.info.pop(_KEY, None)
        if touched:
            for cache in list(_caches):
                if -1 in touched:
                    cache.clear()
                else:
                    cache.invalidate(touched)

    event.listen(Session, "after_flush", after_flush)
    event.listen(Session, "after_commit", after_commit)
    _hooked = True
