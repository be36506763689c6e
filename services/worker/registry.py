"""Which worker processes run on this host, and what each has loaded: one small file per pool
process under `BACKLOT_HOME/workers/`, for `backlot worker status`.

A pool process writes its file when it starts (and again once its `--warm` model is loaded);
it is named like the jobs it claims (`jobs.worker_name`: HOST:PID:PIDNS), so the same test
tells whether it is alive. Files of processes that are gone are removed by the next worker
that starts on the host, and are never reported: a killed worker needs no clean-up here.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from backlot import jobs
from backlot.config import load_settings

log = logging.getLogger("backlot.worker")


@dataclass(frozen=True)
class WorkerProcess:
    name: str  # HOST:PID:PIDNS, as on the jobs it claims
    pid: int
    parent_pid: int  # the `backlot worker` (Celery main) process
    started_at: str
    warm: str | None = None  # the --warm model asked for
    loaded: list[str] = field(default_factory=list)  # base models known to be in memory
    device: str | None = None  # BACKLOT_DEVICE / CUDA_VISIBLE_DEVICES as the process saw them

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def registry_dir() -> Path:
    return load_settings().home / "workers"


def record_process(*, warm: str | None = None, loaded: list[str] | None = None) -> None:
    """Write (or rewrite) this pool process's file; drop the files of this host's dead workers."""
    try:
        _record(warm, loaded)
    except OSError as exc:  # a status report is not worth a worker: it runs without one
        log.warning("could not record this worker for `backlot worker status`: %s", exc)


def _record(warm: str | None, loaded: list[str] | None) -> None:
    folder = registry_dir()
    folder.mkdir(parents=True, exist_ok=True)
    name = jobs.worker_name()
    path = folder / _file_name(os.getpid())
    previous = _read(path)
    entry = WorkerProcess(name=name, pid=os.getpid(), parent_pid=os.getppid(),
                          started_at=previous.started_at if previous else _now(), warm=warm,
                          loaded=loaded or [], device=_device_env())
    temp = path.with_name(f"{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    temp.write_text(json.dumps(entry.to_dict()))
    os.replace(temp, path)
    for other in alive_processes(include_dead=True):
        if other.pid != entry.pid and is_gone(other.name):
            (folder / _file_name(other.pid)).unlink(missing_ok=True)


def alive_processes(*, include_dead: bool = False) -> list[WorkerProcess]:
    """This host's recorded pool processes that are still running (in this PID namespace)."""
    folder = registry_dir()
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob(f"{socket.gethostname()}-*.json")):
        entry = _read(path)
        if entry is not None and (include_dead or _alive(entry)):
            found.append(entry)
    return found


def _alive(entry: WorkerProcess) -> bool:
    if entry.name != jobs.worker_name(entry.pid):
        return False  # another PID namespace (a container): not ours to judge
    return not is_gone(entry.name)


def is_gone(name: str | None) -> bool:
    """`jobs.worker_is_gone`, and also true for a killed process not yet reaped (a zombie)."""
    if jobs.worker_is_gone(name):
        return True
    pid = ((name or "").rsplit(":", 2) + ["", ""])[1]
    if not pid.isdigit() or name != jobs.worker_name(int(pid)):
        return False  # another host or PID namespace: not ours to judge
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _read(path: Path) -> WorkerProcess | None:
    try:
        return WorkerProcess(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _file_name(pid: int) -> str:
    return f"{socket.gethostname()}-{pid}.json"


def _device_env() -> str | None:
    parts = [f"{key}={os.environ[key]}" for key in ("BACKLOT_DEVICE", "CUDA_VISIBLE_DEVICES") if key in os.environ]
    return " ".join(parts) or None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
