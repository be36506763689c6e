"""The outbox dispatcher: hand jobs from PostgreSQL to the broker, after commit, and again
when a message or a worker was lost.

`dispatch` runs after a request commits (the CLI calls it), after every finished task (so
the next job of a chain goes at once: `take_due` in the transaction that marks the task's job
done, `send` after it commits) and periodically in every worker (a thread), which is
what recovers lost messages and killed workers. `SELECT ... FOR UPDATE SKIP LOCKED` keeps
several dispatchers from sending the same job at the same moment; if two still do, the task
is idempotent.
"""

from __future__ import annotations

import logging
import os
import threading

import backlot
from backlot import jobs
from backlot.db.engine import get_engine, listen_connector
from backlot.services.worker.backoff import listen_until

log = logging.getLogger("backlot.dispatch")
STALE_AFTER = float(os.environ.get("BACKLOT_JOB_STALE_S", 120))  # seconds without a heartbeat
REDISPATCH_AFTER = float(os.environ.get("BACKLOT_JOB_REDISPATCH_S", 300))  # sent, never started
LOOP_EVERY = float(os.environ.get("BACKLOT_DISPATCH_EVERY_S", 5))
STATUS_CHANNEL = "backlot_jobs"  # NOTIFYed by the database when a version's status changes (0007)


def dispatch(app, engine=None) -> int:
    """Send what is due; returns how many jobs were sent. A broker error puts the unsent ones
    back to queued (and is raised); a crash between commit and send is caught by the re-send
    rule for dispatched jobs that never started. `engine`: the database (default: the
    environment's)."""
    with backlot.session(engine) as s:
        due = take_due(s)
    return send(app, due, engine)


def take_due(session) -> list[tuple[int, str]]:
    """Mark what is due dispatched, in the caller's transaction; hand the result to `send`
    once that transaction has committed."""
    return [(job.id, job.queue) for job in jobs.jobs_to_send(session, stale_after=STALE_AFTER,
                                                             redispatch_after=REDISPATCH_AFTER)]


def send(app, due: list[tuple[int, str]], engine=None) -> int:
    """Send jobs marked dispatched by a committed transaction (a worker taking the message must
    find the row unlocked and dispatched)."""
    for index, (job_id, queue) in enumerate(due):
        try:
            app.send_task("backlot.run_job", args=[job_id], queue=queue, retry=False)
        except Exception:
            with backlot.session(engine) as s:
                jobs.requeue(s, [j for j, _ in due[index:]])
            raise
    return len(due)


def start_dispatch_loop(app) -> threading.Thread:
    """Dispatch every LOOP_EVERY seconds, and at once when a version's status changes (an
    approval can release jobs that wait for it: PostgreSQL NOTIFY on `backlot_jobs`)."""
    stop, wake = threading.Event(), threading.Event()
    wake.set()  # a pass at start: what a dead worker left, or what was queued meanwhile, goes now

    def loop() -> None:
        failing = False
        while not stop.is_set():
            wake.wait(LOOP_EVERY)
            wake.clear()
            try:
                dispatch(app)
            except Exception as exc:  # noqa: BLE001 - a broker or database hiccup: next round
                if not failing:  # once per outage, not once per round
                    log.warning("dispatcher paused (retrying every %.0fs): %s", LOOP_EVERY,
                                str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
                failing = True
                continue
            if failing:
                log.warning("dispatcher running again")
            failing = False

    threading.Thread(target=_listen, args=(wake, stop), name="backlot-dispatch-listen", daemon=True).start()
    thread = threading.Thread(target=loop, name="backlot-dispatch", daemon=True)
    thread.start()
    return thread


def _listen(wake: threading.Event, stop: threading.Event) -> None:
    """Set `wake` on every status NOTIFY (the periodic pass covers a lost connection's gap)."""
    connect = listen_connector(get_engine(check_schema=False).url.render_as_string(hide_password=False))
    if connect is not None:
        listen_until(stop, connect, STATUS_CHANNEL, wake.set, what="dispatcher")
