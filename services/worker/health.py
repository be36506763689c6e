"""What a studio asks of a worker host (`backlot worker status`): can it reach the broker, the
database (at the schema this Backlot needs) and the store; which device would it render on;
which workers run here, what each has loaded and which job each is running.

Nothing here starts anything: an embedded database that is not running is reported down, not
started. torch is not imported: the device comes from `nvidia-smi` (torch only when the GPU
driver is present but `nvidia-smi` is not).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from backlot import jobs
from backlot.config import Settings, load_settings

CONNECT_TIMEOUT_S = 5


@dataclass
class Check:
    ok: bool
    detail: str
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "detail": self.detail, **self.info}


@dataclass
class HostStatus:
    host: str
    checks: dict[str, Check]
    workers: list[dict[str, Any]]
    orphaned_jobs: list[dict[str, Any]]  # running jobs claimed here by a process that is gone

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks.values())

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "ok": self.ok, "checks": {k: c.to_dict() for k, c in self.checks.items()},
                "workers": self.workers, "orphaned_jobs": self.orphaned_jobs}


def host_status(expect_workers: int = 0) -> HostStatus:
    settings = load_settings()
    database, url = check_database(settings)
    checks = {"database": database, "broker": check_broker(database), "store": check_store(settings.store_url),
              "device": check_device()}
    workers, orphaned = workers_on_host(url if database.info.get("reachable") else None)
    alive = len({w["parent_pid"] for w in workers})
    checks["workers"] = Check(alive >= expect_workers,
                              f"{alive} worker(s), {len(workers)} process(es) on this host"
                              + (f"; {expect_workers} expected" if expect_workers else ""),
                              {"workers": alive, "processes": len(workers), "expected": expect_workers})
    return HostStatus(socket.gethostname(), checks, workers, orphaned)


# -- the pieces -----------------------------------------------------------------------------------


def check_database(settings: Settings) -> tuple[Check, str | None]:
    """Reachable, and at the head revision; (the check, the URL when there is one)."""
    from backlot.db import migrate

    head = migrate.head_revision()
    if settings.embedded:
        from backlot.db.embedded import EmbeddedPostgres

        embedded = EmbeddedPostgres(settings.home)
        if not embedded.status().running:
            return Check(False, f"the embedded database in {embedded.data_dir} is not running: run `backlot db start`",
                         {"embedded": True, "reachable": False, "head": head}), None
        url = embedded.url()
    else:
        url = settings.database_url
    where = _safe(url)
    engine = create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
    try:
        with engine.connect() as conn:
            revision = migrate.current_revision(conn)
    except Exception as exc:  # noqa: BLE001 - any failure to reach it is the answer
        return Check(False, f"cannot reach {where}: {_first_line(exc)}",
                     {"url": where, "embedded": settings.embedded, "reachable": False, "head": head}), url
    finally:
        engine.dispose()
    info = {"url": where, "embedded": settings.embedded, "reachable": True, "revision": revision, "head": head}
    if revision != head:
        return Check(False, f"schema at {revision or 'none'}, this Backlot needs {head}: run `backlot db upgrade`",
                     info), url
    return Check(True, f"{where}, schema at {revision} (head)", info), url


def check_broker(database: Check) -> Check:
    """BROKER_URL (Redis, RabbitMQ) by connecting to it; without one the broker is the database."""
    url = os.environ.get("BROKER_URL")
    if not url:
        reachable = bool(database.info.get("reachable"))
        return Check(reachable, "the database (no BROKER_URL)" + ("" if reachable else ": unreachable"),
                     {"kind": "database"})
    from kombu import Connection

    where = _safe(url)
    try:
        with Connection(url, connect_timeout=CONNECT_TIMEOUT_S,
                        transport_options={"max_retries": 0, "socket_timeout": CONNECT_TIMEOUT_S}) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=CONNECT_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001
        return Check(False, f"cannot reach {where}: {_first_line(exc)}", {"kind": "url", "url": where})
    return Check(True, where, {"kind": "url", "url": where})


def check_store(store_url: str) -> Check:
    """A local store's folder is writable (or can be created); a remote one answers a lookup."""
    from backlot.storage import Store

    try:
        store = Store(store_url)
        if store.local:
            root = Path(store.root.removeprefix("file://")).expanduser()
            existing = next(p for p in (root, *root.parents) if p.exists())
            if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
                return Check(False, f"{existing} is not a writable folder", {"url": store_url})
        else:
            store.exists("0" * 64)  # one cheap request: credentials and network are fine
    except Exception as exc:  # noqa: BLE001
        return Check(False, f"cannot reach {store_url}: {_first_line(exc)}", {"url": store_url})
    return Check(True, store_url, {"url": store_url})


def check_device() -> Check:
    """cpu or cuda with the GPU names this process would see (CUDA_VISIBLE_DEVICES applied)."""
    forced = os.environ.get("BACKLOT_DEVICE")
    gpus, source = _gpus()
    if forced == "cpu" or (not forced and not gpus):
        return Check(True, "cpu" + (f" (BACKLOT_DEVICE=cpu; {len(gpus)} GPU(s) unused)" if gpus else ""),
                     {"kind": "cpu", "gpus": gpus, "source": source})
    if not gpus:
        return Check(False, f"BACKLOT_DEVICE={forced} but no CUDA GPU is visible", {"kind": forced, "gpus": [],
                                                                                    "source": source})
    return Check(True, f"cuda: {', '.join(gpus)}", {"kind": forced or "cuda", "gpus": gpus, "source": source})


def _gpus() -> tuple[list[str], str]:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return [], "CUDA_VISIBLE_DEVICES"
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            result = subprocess.run([smi, "--query-gpu=index,uuid,name", "--format=csv,noheader"],
                                    capture_output=True, text=True, timeout=15)
        except (OSError, subprocess.TimeoutExpired):
            result = None
        if result is not None and result.returncode == 0:
            rows = [[c.strip() for c in line.split(",", 2)] for line in result.stdout.splitlines() if line.strip()]
            if visible is not None:
                wanted = [v.strip() for v in visible.split(",")]
                rows = [r for w in wanted for r in rows if w in (r[0], r[1]) or (w.startswith("GPU-") and r[1].startswith(w))]
            return [f"{r[0]}: {r[2]}" for r in rows], "nvidia-smi"
    if not Path("/dev/nvidiactl").exists():
        return [], "none"
    import torch  # a driver without nvidia-smi: only torch can tell

    if not torch.cuda.is_available():
        return [], "torch"
    return [f"{i}: {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())], "torch"


def workers_on_host(url: str | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """This host's live pool processes with the job each runs; and running jobs whose process is gone."""
    from backlot.services.worker.registry import alive_processes, is_gone

    processes = {p.name: p.to_dict() | {"job": None} for p in alive_processes()}
    orphaned: list[dict[str, Any]] = []
    for job in _running_jobs_here(url):
        if job["worker"] in processes:
            processes[job["worker"]]["job"] = job
        elif is_gone(job["worker"]):
            orphaned.append(job)
        else:  # alive, but it wrote no registry file (started by an older Backlot)
            host, pid, _ns = job["worker"].rsplit(":", 2)
            processes[job["worker"]] = {"name": job["worker"], "pid": int(pid), "parent_pid": None,
                                        "warm": None, "loaded": None, "device": None, "job": job}
    return sorted(processes.values(), key=lambda p: p["pid"]), orphaned


def _running_jobs_here(url: str | None) -> list[dict[str, Any]]:
    if url is None:
        return []
    from backlot.db.jobs import Job, JobState
    from backlot.db.models import Project

    prefix = f"{socket.gethostname()}:"
    engine = create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(Job.id, Job.kind, Project.code, Job.worker, Job.progress, Job.progress_note,
                                       Job.started_at, Job.heartbeat_at)
                                .join(Project, Project.id == Job.project_id)
                                .where(Job.state == JobState.running, Job.worker.startswith(prefix, autoescape=True))
                                .order_by(Job.id)).all()
            now = conn.execute(text("SELECT now()")).scalar()
    except Exception:  # noqa: BLE001 - the database check already says why
        return []
    finally:
        engine.dispose()
    return [{"id": r.id, "kind": getattr(r.kind, "value", r.kind), "project": r.code, "worker": r.worker,
             "progress": r.progress, "note": r.progress_note, "started_at": r.started_at,
             "heartbeat_age_s": round((now - r.heartbeat_at).total_seconds(), 1) if r.heartbeat_at else None}
            for r in rows]


def _safe(url: str) -> str:
    """A URL without its password."""
    try:
        return make_url(url.removeprefix("backlotpg+")).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not an SQLAlchemy URL (amqp://...)
        from kombu.utils.url import maybe_sanitize_url

        return maybe_sanitize_url(url)


def _first_line(exc: BaseException) -> str:
    text_ = str(getattr(exc, "orig", None) or exc).strip()
    return (text_.splitlines() or [type(exc).__name__])[0]
