"""Backlot's own PostgreSQL server, for machines where no DATABASE_URL is set.

The cluster lives in `BACKLOT_HOME/postgres/data`, listens on 127.0.0.1 only (a free
port chosen at start, read back from `postmaster.pid`), and requires a password that
is generated at `initdb` and kept in `BACKLOT_HOME/postgres/password` (mode 0600).
The server is started with `pg_ctl` in its own session, so it outlives the command
that started it and is ended by `backlot db stop` (`pg_ctl stop -m fast`).

Binaries: `BACKLOT_PG_BIN`, else `pg_ctl` on PATH, else `/usr/lib/postgresql/*/bin`,
else those shipped by the `pgserver` wheel (`pip install backlot[embedded-pg]`).
PostgreSQL refuses to run as root: under root the server runs as the `postgres`
system user (or a `backlot-pg` user created for it), and the folders above the data
directory get the traverse bit (o+x) it needs, nothing more.
"""

from __future__ import annotations

import fcntl
import glob
import importlib.util
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from backlot.errors import DatabaseError

DB_NAME = "backlot"
DB_USER = "backlot"


@dataclass(frozen=True)
class ServerStatus:
    running: bool
    data_dir: Path
    pid: int | None = None
    port: int | None = None
    initialized: bool = False


def find_pg_bin() -> Path:
    """The folder holding initdb/pg_ctl/postgres, or a DatabaseError saying how to get one."""
    candidates: list[Path] = []
    if env := os.environ.get("BACKLOT_PG_BIN"):
        candidates.append(Path(env))
    if which := shutil.which("pg_ctl"):
        candidates.append(Path(which).resolve().parent)
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    candidates += [Path(p) for p in versions]
    spec = importlib.util.find_spec("pgserver")
    if spec and spec.submodule_search_locations:
        candidates.append(Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin")
    for folder in candidates:
        if all((folder / tool).exists() for tool in ("initdb", "pg_ctl", "postgres")):
            return folder
    raise DatabaseError(
        "no PostgreSQL server binaries found for the embedded database: install them "
        "(`apt-get install postgresql` or `pip install 'backlot[embedded-pg]'`), set "
        "BACKLOT_PG_BIN to their folder, or point DATABASE_URL at a running server"
    )


def _version_key(path: str) -> tuple[int, ...]:
    digits = Path(path).parent.name.split(".")
    return tuple(int(d) for d in digits if d.isdigit())


class EmbeddedPostgres:
    """Start, stop and locate the embedded cluster under `home/postgres`."""

    def __init__(self, home: Path, server_options: str | None = None):
        self.root = Path(home).expanduser().resolve() / "postgres"
        self.data_dir = self.root / "data"
        self.password_file = self.root / "password"
        self.log_file = self.root / "server.log"
        self.server_options = server_options if server_options is not None else os.environ.get("BACKLOT_PG_OPTIONS", "")

    # -- queries ---------------------------------------------------------------------------

    def status(self) -> ServerStatus:
        initialized = (self.data_dir / "PG_VERSION").exists()
        pid, port = self._read_postmaster_pid()
        running = pid is not None and _pid_alive(pid)
        return ServerStatus(running, self.data_dir, pid if running else None, port if running else None, initialized)

    def url(self) -> str:
        status = self.status()
        if not status.running:
            raise DatabaseError(f"the embedded database in {self.data_dir} is not running: run `backlot db start`")
        password = self.password_file.read_text().strip()
        return f"postgresql+psycopg://{DB_USER}:{password}@127.0.0.1:{status.port}/{DB_NAME}"

    # -- control ---------------------------------------------------------------------------

    def start(self, *, initialise: bool = True) -> str:
        """Start the server if it is not running (initialising the cluster once, unless told
        not to); return its URL."""
        with self._lock():
            if self.status().running:
                return self.url()
            bin_dir = find_pg_bin()
            fresh = not (self.data_dir / "PG_VERSION").exists()
            if fresh and not (initialise and INITIALISE):
                raise DatabaseError(f"the embedded database in {self.data_dir} is gone (its folder was removed); "
                                    "restore BACKLOT_HOME, or point DATABASE_URL at a server")
            if fresh:
                self._initdb(bin_dir)
            self._pg_ctl_start(bin_dir)
            if fresh:
                self._create_database()
            return self.url()

    def stop(self) -> bool:
        """Stop the server; False when it was not running."""
        with self._lock():
            if not self.status().running:
                return False
            self._run_as_owner([str(find_pg_bin() / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "60", "stop"])
            return True

    # -- internals -------------------------------------------------------------------------

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """Serialise start/stop across processes (two commands starting the server at once)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _last_port(self) -> int | None:
        try:
            port = int((self.root / "port").read_text())
        except (OSError, ValueError):
            return None
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: TIME_WAIT is no obstacle
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return None  # taken meanwhile
        return port

    def _read_postmaster_pid(self) -> tuple[int | None, int | None]:
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
            return int(lines[0]), int(lines[3])
        except (OSError, ValueError, IndexError):
            return None, None

    def _owner(self) -> pwd.struct_passwd | None:
        """The unprivileged account the server runs as when we are root; None otherwise."""
        if os.geteuid() != 0:
            return None
        for name in ("postgres", "backlot-pg"):
            try:
                return pwd.getpwnam(name)
            except KeyError:
                continue
        subprocess.run(["useradd", "--system", "--no-create-home", "backlot-pg"], check=True, capture_output=True)
        return pwd.getpwnam("backlot-pg")

    def _run_as_owner(self, argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
        owner = self._owner()
        kwargs = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []} if owner else {}
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                                    start_new_session=True, stdin=subprocess.DEVNULL, **kwargs)
        except subprocess.TimeoutExpired as exc:
            raise DatabaseError(f"{Path(argv[0]).name} did not finish in {timeout:.0f}s; see {self.log_file}") from exc
        if result.returncode != 0:
            tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-5:])
            raise DatabaseError(f"{Path(argv[0]).name} failed for {self.data_dir}: {tail} (log: {self.log_file})")
        return result

    def _prepare_ownership(self) -> None:
        owner = self._owner()
        if owner is None:
            return
        for parent in reversed(self.root.parents):
            mode = parent.stat().st_mode
            if not mode & 0o001:
                parent.chmod(mode | 0o001)  # traverse only, so the server can reach its data
        self.root.chmod(self.root.stat().st_mode | 0o001)
        for path in (self.data_dir, self.log_file):
            os.chown(path, owner.pw_uid, owner.pw_gid)

    def _initdb(self, bin_dir: Path) -> None:
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise DatabaseError(f"{self.data_dir} exists but holds no PostgreSQL cluster: move it away and retry")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        self.log_file.touch()
        password = secrets.token_urlsafe(24)
        self.password_file.write_text(password + "\n")
        self.password_file.chmod(0o600)
        self._prepare_ownership()
        pwfile = self.data_dir.parent / f".pw-{os.getpid()}"
        pwfile.write_text(password + "\n")
        owner = self._owner()
        if owner:
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        try:
            self._run_as_owner([str(bin_dir / "initdb"), "-D", str(self.data_dir), "-U", DB_USER,
                                "--auth=scram-sha-256", f"--pwfile={pwfile}", "--encoding=UTF8",
                                "--locale=C", "--no-sync"], timeout=300)
        finally:
            pwfile.unlink(missing_ok=True)

    def _pg_ctl_start(self, bin_dir: Path) -> None:
        self._prepare_ownership()
        for attempt in range(3):
            # The port of the last start when it is free: processes that outlived a restart
            # (a worker, the API) hold URLs with it and reconnect as soon as it is back.
            port = (self._last_port() if attempt == 0 else None) or _free_port()
            options = f"-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' {self.server_options}"
            try:
                self._run_as_owner([str(bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file),
                                    "-o", options, "-w", "-t", "60", "start"])
                (self.root / "port").write_text(f"{port}\n")
                return
            except DatabaseError:
                if self.status().running:
                    return
                time.sleep(0.5)  # most likely the port was taken between choosing and binding it
        raise DatabaseError(f"the embedded PostgreSQL server did not start; see {self.log_file}")

    def _create_database(self) -> None:
        import psycopg

        url = self.url().replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)[0] + "/postgres"
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DB_NAME}")


# A long-running process (a worker) that found its database turns this off: should the
# folder vanish under it, it must not quietly start an empty database in its place.
INITIALISE = True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
