"""A worker process owned by the command that starts it, and the worker's side of that bond.

A command that starts a worker (`backlot demo`, the tests) stops it on exit, and the worker
dies with it when the command is killed outright (SIGKILL, an OOM kill, a CI timeout) and
has no chance to stop it. On Linux the kernel tells the worker (a parent-death signal, set
between fork and exec so no moment is uncovered); everywhere, a watchdog thread in the
worker notices that its parent's pid is no longer its parent. Either way the worker takes
a cold shutdown: its running job is left to the recovery that any lost worker gets.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from backlot.processes import die_with_parent

log = logging.getLogger("backlot.worker")
PARENT_ENV = "BACKLOT_PARENT_PID"
ON_PARENT_DEATH = signal.SIGQUIT  # Celery's cold shutdown: stop now, do not finish the job
WATCH_EVERY_S = 1.0


def start_worker_process(log_file: Path, *, queues: str = "gpu,cpu", loglevel: str = "info",
                         env: dict[str, str] | None = None) -> subprocess.Popen:
    """`backlot worker` in its own process group, bound to this process's life."""
    parent = os.getpid()
    env = {**(env if env is not None else os.environ), PARENT_ENV: str(parent)}
    with open(log_file, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "backlot.services.cli", "worker", "--queues", queues, "--loglevel", loglevel],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            preexec_fn=lambda: _die_with(parent))


def stop_worker_process(worker: subprocess.Popen, timeout: float = 30) -> None:
    """Warm shutdown (the job in hand finishes), then the whole group is killed after `timeout`."""
    if worker.poll() is not None:
        return
    os.killpg(worker.pid, signal.SIGTERM)
    try:
        worker.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)


def follow_parent() -> None:
    """In the worker: when started by another command (BACKLOT_PARENT_PID), end with it."""
    wanted = os.environ.pop(PARENT_ENV, None)  # not inherited by what this worker starts
    if not wanted:
        return
    parent = int(wanted)
    _die_with(parent)  # again here: harmless, and covers a worker started some other way
    threading.Thread(target=_watch, args=(parent,), name="backlot-parent-watch", daemon=True).start()


def _die_with(parent: int) -> None:
    die_with_parent(parent, ON_PARENT_DEATH, exit_code=3)


def _watch(parent: int) -> None:
    stop = threading.Event()
    while not stop.wait(WATCH_EVERY_S):
        if os.getppid() != parent:
            log.warning("the command that started this worker (pid %s) is gone: stopping", parent)
            os.kill(os.getpid(), ON_PARENT_DEATH)
            return
