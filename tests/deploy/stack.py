"""A multi-host deployment rehearsed on one machine: the pieces a studio runs on separate hosts,
each started here as its own process with nothing shared but the network.

- PostgreSQL: a server of its own (own data folder and port), migrated; stopped and started
  on the same port for the database fault.
- Redis: a real redis-server as the Celery broker (append-only file, so a restart keeps the
  queued messages, as a studio's would).
- S3: moto's server (the real S3 HTTP API) on a fixed loopback port; stopped and started on
  that port for the object-store fault (moto keeps its buckets in-process, so they survive).
- Worker hosts: `backlot worker` processes, each with its own BACKLOT_HOME (its own local
  cache; no store folder: files come and go through S3 only) and, where the kernel lets us
  (root), its own hostname, so a job of a killed worker is recovered the way a job of a lost
  host is (its heartbeat goes stale), not by the same-host "that pid is gone" shortcut.

Used by tests/deploy/test_rehearsal.py and tests/benchmarks/bench_soak.py.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from tests.storage.conftest import S3, MotoS3, free_port, wait_for_port  # noqa: F401 - re-exported for bench_soak
from tests.worker.conftest import RedisServer, cpu_seconds, group_pids  # noqa: F401 - re-exported

# The credentials and region tests.storage.conftest.S3.client() uses (moto accepts any).
AWS = {"AWS_ACCESS_KEY_ID": "backlot-test", "AWS_SECRET_ACCESS_KEY": "backlot-secret", "AWS_DEFAULT_REGION": "eu-west-1"}
# Fast recovery for a rehearsal: a lost worker's job is re-sent 4 s after its last heartbeat.
FAST_DISPATCH = {"BACKLOT_DISPATCH_EVERY_S": "0.5", "BACKLOT_JOB_STALE_S": "4", "BACKLOT_JOB_REDISPATCH_S": "6"}
# Settings of the machine running the tests that must not leak into a rehearsed host.
NOT_INHERITED = ("DATABASE_URL", "BROKER_URL", "BACKLOT_HOME", "BACKLOT_STORE", "BACKLOT_CACHE_DIR",
                 "BACKLOT_TEST_DATABASE_URL", "AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_REGION",
                 "AWS_SESSION_TOKEN", "BACKLOT_PARENT_PID")
CLONE_NEWUTS = 0x04000000


@contextlib.contextmanager
def own_hostname(name: str) -> Iterator[bool]:
    """Processes started inside see `name` as their hostname (a new UTS namespace for this
    thread, left again on exit). Yields False, changing nothing, where that is not allowed."""
    libc = ctypes.CDLL(None, use_errno=True)
    home = os.open("/proc/thread-self/ns/uts", os.O_RDONLY)
    try:
        if libc.unshare(CLONE_NEWUTS) != 0:
            yield False
            return
        try:
            raw = name.encode()
            yield libc.sethostname(raw, len(raw)) == 0
        finally:
            if libc.setns(home, CLONE_NEWUTS) != 0:
                raise OSError(ctypes.get_errno(), "could not return to this machine's hostname")
    finally:
        os.close(home)


@dataclass
class WorkerHost:
    """One rehearsed GPU host: a `backlot worker` with its own home, cache, log and hostname."""

    name: str
    folder: Path
    env: dict[str, str]
    process: subprocess.Popen | None = None
    own_name: bool = False  # the worker sees `name` as its hostname
    starts: int = 0
    queues: str = "gpu,cpu"

    @property
    def log(self) -> Path:
        return self.folder / "worker.log"

    @property
    def home(self) -> Path:
        return Path(self.env["BACKLOT_HOME"])

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> "WorkerHost":
        from backlot.services.worker.process import start_worker_process

        with own_hostname(self.name) as named:
            self.process = start_worker_process(self.log, queues=self.queues, env=self.env)
        self.own_name, self.starts = named, self.starts + 1
        return self

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def ready(self) -> bool:
        """Celery's ' ready.' line, once per start."""
        return self.log_text().count(" ready.") >= self.starts

    def kill(self) -> None:
        """SIGKILL to the whole group (the worker and its pool): a host lost at once."""
        if self.alive:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        from backlot.services.worker.process import stop_worker_process

        if self.process is not None:
            stop_worker_process(self.process, timeout=20)

    def pids(self) -> list[int]:
        return group_pids(self.process.pid) if self.alive else []

    def signs(self, worker: str | None) -> bool:
        """Whether a job's `worker` (HOST:PID:NS) is a process of this host."""
        return bool(worker) and self.own_name and worker.split(":", 1)[0] == self.name


@dataclass
class Stack:
    root: Path
    pg: object  # EmbeddedPostgres
    db_url: str
    redis: RedisServer
    s3_server: MotoS3
    s3: S3
    hosts: list[WorkerHost] = field(default_factory=list)
    studio_home: Path | None = None

    def client_env(self) -> dict[str, str]:
        """What a studio workstation (publishers, the API, a DCC) has in its environment."""
        return {"DATABASE_URL": self.db_url, "BROKER_URL": self.redis.url, "BACKLOT_STORE": self.s3.url,
                "AWS_ENDPOINT_URL": self.s3_server.endpoint, "BACKLOT_HOME": str(self.studio_home),
                "BACKLOT_USER": "rehearsal", **AWS}

    def add_host(self, name: str, extra_env: dict[str, str] | None = None) -> WorkerHost:
        folder = self.root / "hosts" / name
        (folder / "home").mkdir(parents=True)
        env = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
        env.update(self.client_env(), BACKLOT_HOME=str(folder / "home"), BACKLOT_USER=f"worker-{name}",
                   OMP_NUM_THREADS="1", **FAST_DISPATCH, **(extra_env or {}))
        host = WorkerHost(name, folder, env)
        self.hosts.append(host)
        return host

    def wait_ready(self, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while not all(h.ready() for h in self.hosts if h.alive):
            if time.monotonic() > deadline:
                raise AssertionError("workers not ready: " + "; ".join(
                    f"{h.name}: {h.log_text()[-800:]}" for h in self.hosts if not h.ready()))
            for host in self.hosts:
                if host.process is not None and host.process.poll() is not None:
                    raise AssertionError(f"worker {host.name} exited {host.process.returncode}: {host.log_text()[-2000:]}")
            time.sleep(0.3)

    def log_tails(self, lines: int = 40) -> str:
        return "\n".join(f"== {h.name} ({h.log})\n" + "\n".join(h.log_text().splitlines()[-lines:])
                         for h in self.hosts)

    # -- faults ------------------------------------------------------------------------------

    def restart_redis(self, down_s: float = 5) -> None:
        self.redis.stop()
        time.sleep(down_s)
        self.redis.start()  # same port, same append-only file

    def restart_postgres(self, down_s: float = 5) -> None:
        self.pg.stop()
        time.sleep(down_s)
        assert self.pg.start() == self.db_url  # same port: what the hosts hold still points at it

    def close(self) -> None:
        for host in self.hosts:
            with contextlib.suppress(Exception):
                host.stop()
        self.redis.stop()
        self.s3_server.stop()
        self.pg.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def build_stack(workers: int = 2, pg_options: str = "") -> Stack:
    """PostgreSQL, Redis and S3 up, the database migrated, the bucket made, `workers` hosts
    defined (not started: `host.start()`)."""
    import backlot
    from backlot.db.embedded import EmbeddedPostgres
    from backlot.db.engine import get_engine
    from backlot.db.migrate import upgrade

    # Outside pytest's basetemp (pruned by concurrent runs); readable by the server's account.
    root = Path(tempfile.mkdtemp(prefix="backlot-rehearsal-"))
    root.chmod(0o755)
    pg = redis = s3_server = None
    try:
        pg = EmbeddedPostgres(root / "db", server_options=pg_options)
        url = pg.start()
        upgrade(get_engine(backlot.config.Settings(root, url, str(root / "unused-store"), "rehearsal"),
                           check_schema=False))
        (root / "redis").mkdir()
        redis = RedisServer(root / "redis")
        redis.start()
        s3_server = MotoS3()
        s3_server.start()
        bucket = "rehearsal-" + uuid.uuid4().hex[:8]
        s3 = S3(s3_server.endpoint, bucket, f"s3://{bucket}/store")
        s3.client().create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": AWS["AWS_DEFAULT_REGION"]})
        stack = Stack(root, pg, url, redis, s3_server, s3, studio_home=root / "studio" / "home")
        stack.studio_home.mkdir(parents=True)
        for index in range(workers):
            stack.add_host(f"gpu-{chr(ord('a') + index)}")
        return stack
    except BaseException:
        for part in (redis, s3_server, pg):
            if part is not None:
                with contextlib.suppress(Exception):
                    part.stop()
        shutil.rmtree(root, ignore_errors=True)
        raise
