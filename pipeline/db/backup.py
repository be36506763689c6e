"""Backup and restore of Backlot's database, with a manifest of the store objects it references.

A backup is a folder:

    manifest.json     what the dump holds: Backlot's schema revision and versions, the store
                      folders and objects the database references (hashes and sizes), the
                      dump's own sha256
    backlot.dump      `pg_dump --format=custom` of the database
    objects/ab/...    with --with-store: a copy of every referenced object, checked by hash

The dump and the manifest are read in one snapshot (`pg_export_snapshot` handed to
`pg_dump --snapshot`), so the manifest lists exactly the objects the dump references even
while others publish. The folder is written under a temporary name and renamed into place.

Restore never writes into the live database: the dump goes into a fresh database beside it,
is migrated there if it is older than this Backlot, and only then replaces the target by two
renames in one transaction. A failure before that leaves the target as it was and drops the
temporary database. Refused: a target that holds data (unless `force`), a dump from a newer
schema than this Backlot knows, a dump missing or not matching its manifest.

The PostgreSQL client tools are those beside the embedded server (`find_pg_bin`). They talk
TCP with a password, so they run as the invoking user, also as root (only the server itself
must run as its owner).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL, make_url

from backlot.config import Settings, load_settings
from backlot.db import migrate
from backlot.db.embedded import find_pg_bin
from backlot.errors import DatabaseError, InvalidInputError
from backlot.storage import CHUNK, Store, StoredFile

FORMAT = "backlot-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DUMP = "backlot.dump"
OBJECTS = "objects"
PG_TIMEOUT_S = 6 * 3600  # a dump of a large production takes long; a hung tool does not hang forever


class BackupError(InvalidInputError):
    """A backup cannot be made or restored; the message says why and what to do."""


@dataclass(frozen=True)
class StoreFolder:
    """A `versions/<hash>/` folder the database points at: a version's files or a cut's original."""

    content_hash: str
    files: list[StoredFile]

    def to_dict(self) -> dict[str, Any]:
        return {"content_hash": self.content_hash,
                "files": [{"path": f.path, "sha256": f.sha256, "size": f.size} for f in self.files]}


@dataclass(frozen=True)
class Manifest:
    schema_revision: str | None
    backlot_version: str
    postgres: dict[str, str]
    created_at: str
    counts: dict[str, int]
    folders: list[StoreFolder]
    signed: dict[str, int]  # sha256 -> size: signed copies, stored as bare objects
    dump_sha256: str = ""
    dump_size: int = 0
    store_included: bool = False
    store_url: str = ""

    def objects(self) -> dict[str, int]:
        """Every object the database references: sha256 -> size."""
        found = {f.sha256: f.size for folder in self.folders for f in folder.files}
        return found | self.signed

    def to_dict(self) -> dict[str, Any]:
        objects = self.objects()
        return {
            "format": FORMAT, "format_version": FORMAT_VERSION, "created_at": self.created_at,
            "backlot_version": self.backlot_version, "schema_revision": self.schema_revision,
            "postgres": self.postgres, "counts": self.counts,
            "dump": {"file": DUMP, "sha256": self.dump_sha256, "size": self.dump_size},
            "store": {"url": self.store_url, "included": self.store_included,
                      "objects": len(objects), "bytes": sum(objects.values())},
            "folders": [f.to_dict() for f in self.folders],
            "signed_files": [{"sha256": sha, "size": size} for sha, size in sorted(self.signed.items())],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Manifest":
        folders = [StoreFolder(f["content_hash"], [StoredFile(e["path"], e["sha256"], int(e["size"]))
                                                   for e in f["files"]]) for f in data["folders"]]
        return cls(schema_revision=data["schema_revision"], backlot_version=data["backlot_version"],
                   postgres=dict(data["postgres"]), created_at=data["created_at"], counts=dict(data["counts"]),
                   folders=folders, signed={s["sha256"]: int(s["size"]) for s in data["signed_files"]},
                   dump_sha256=data["dump"]["sha256"], dump_size=int(data["dump"]["size"]),
                   store_included=bool(data["store"]["included"]), store_url=data["store"].get("url", ""))


@dataclass(frozen=True)
class BackupResult:
    folder: Path
    manifest: Manifest
    copied_objects: int = 0


@dataclass(frozen=True)
class RestoreResult:
    database: str
    schema_revision: str | None  # of the dump
    migrated_to: str | None  # the head it was upgraded to, when it was older
    counts: dict[str, int]
    replaced: bool  # the target held data and was replaced (--force)
    stored_objects: int = 0  # objects put into the store from the backup
    missing_objects: list[str] = field(default_factory=list)  # referenced, yet in neither store nor backup


# -- backup ------------------------------------------------------------------------------------


def backup(target: Path | str, *, with_store: bool = False, settings: Settings | None = None,
           progress: Callable[[str], None] | None = None) -> BackupResult:
    """Dump the configured database into the new folder `target` (with its manifest, and the
    referenced store objects when `with_store`)."""
    settings = settings or load_settings()
    target = Path(target).expanduser().absolute()
    _check_target_folder(target)
    url = _database_url(settings)
    temp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    temp.mkdir()
    try:
        manifest = _dump(url, temp / DUMP, settings.store_url)
        copied = 0
        if with_store:
            if progress:
                progress(f"copying {len(manifest.objects())} store objects")
            copied = _copy_objects_out(Store(settings.store_url), manifest.objects(), temp / OBJECTS)
        digest, size = _hash_file(temp / DUMP)
        manifest = _replace(manifest, dump_sha256=digest, dump_size=size, store_included=with_store)
        _write_json(temp / MANIFEST, manifest.to_dict())
        if target.exists():
            target.rmdir()  # checked empty above
        os.rename(temp, target)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return BackupResult(target, manifest, copied)


def _check_target_folder(target: Path) -> None:
    if not target.parent.is_dir():
        raise BackupError(f"{target.parent}: no such folder; create it first or choose another place for the backup")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise BackupError(f"{target} already exists and is not an empty folder; choose a new folder for the backup")


def _dump(url: URL, dump_file: Path, store_url: str) -> Manifest:
    """pg_dump and the manifest's queries in one snapshot."""
    with _connect(url) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
        manifest = _read_manifest_data(conn, store_url)
        _run_pg_tool("pg_dump", ["--format=custom", "--compress=6", f"--file={dump_file}",
                                 f"--snapshot={snapshot}", f"--dbname={url.database}"], url)
        conn.execute("COMMIT")
    return manifest


def _read_manifest_data(conn: psycopg.Connection, store_url: str) -> Manifest:
    revision = None
    if _table_exists(conn, "alembic_version"):
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        revision = row[0] if row else None
    folders: dict[str, list[StoredFile]] = {}
    if _table_exists(conn, "version_files"):
        rows = conn.execute("SELECT DISTINCT v.content_hash, f.path, f.sha256, f.size FROM versions v "
                            "JOIN version_files f ON f.version_id = v.id ORDER BY 1, 2")
        for content_hash, path, sha, size in rows:
            folders.setdefault(content_hash, []).append(StoredFile(path, sha, size))
    if _table_exists(conn, "cut_revisions"):  # a cut's original file: a one-file folder
        rows = conn.execute("SELECT DISTINCT stored_hash, source_file, file_sha256, file_size FROM cut_revisions")
        for content_hash, path, sha, size in rows:
            folders.setdefault(content_hash, [StoredFile(path, sha, size)])
    signed: dict[str, int] = {}
    if _table_exists(conn, "signed_files"):
        signed = dict(conn.execute("SELECT DISTINCT sha256, size FROM signed_files").fetchall())
    counts = {table: conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()[0]
              for table in ("projects", "versions", "jobs") if _table_exists(conn, table)}
    server = conn.execute("SHOW server_version").fetchone()[0]
    return Manifest(schema_revision=revision, backlot_version=_backlot_version(),
                    postgres={"server": server, "pg_dump": _tool_version("pg_dump")},
                    created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), counts=counts,
                    folders=[StoreFolder(h, files) for h, files in sorted(folders.items())],
                    signed=signed, store_url=store_url)


def _copy_objects_out(store: Store, objects: dict[str, int], folder: Path) -> int:
    """Copy each object out of the store, checking its hash on the way; all missing ones named at once."""
    missing: list[str] = []
    for sha, size in sorted(objects.items()):
        target = folder / sha[:2] / sha
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            source = store.open_object(sha)
        except FileNotFoundError:
            missing.append(sha)
            continue
        digest = hashlib.sha256()
        with source, open(target, "wb") as out:
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha:
            raise BackupError(f"store object {sha} is damaged (its bytes hash to {digest.hexdigest()}); "
                              "restore it from another copy before backing up with --with-store")
    if missing:
        shown = ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else "")
        raise BackupError(f"{len(missing)} object(s) the database references are not in the store {store.root} "
                          f"({shown}); back up without --with-store, or restore them to the store first")
    return len(objects)


# -- restore -----------------------------------------------------------------------------------


def read_backup(folder: Path | str) -> Manifest:
    """The manifest of the backup in `folder`, after checking its dump is there and whole."""
    folder = Path(folder).expanduser()
    path = folder / MANIFEST
    if not path.is_file():
        raise BackupError(f"{folder} is not a Backlot backup (no {MANIFEST}); give the folder `backlot backup` wrote")
    try:
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT:
            raise ValueError(f"format is {data.get('format')!r}, not {FORMAT!r}")
        if int(data.get("format_version", 0)) > FORMAT_VERSION:
            raise BackupError(f"{path} is backup format {data['format_version']}, newer than this Backlot reads "
                              f"({FORMAT_VERSION}); restore it with a newer Backlot")
        manifest = Manifest.from_dict(data)
    except (ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"{path} is not a readable backup manifest ({exc}); the backup is damaged") from exc
    dump = folder / DUMP
    if not dump.is_file():
        raise BackupError(f"{dump} is missing: the backup is incomplete; use another backup")
    digest, size = _hash_file(dump)
    if (digest, size) != (manifest.dump_sha256, manifest.dump_size):
        raise BackupError(f"{dump} is corrupt: {size} bytes with sha256 {digest[:12]}..., the manifest says "
                          f"{manifest.dump_size} bytes with {manifest.dump_sha256[:12]}...; use another backup")
    _check_revision(manifest.schema_revision)
    return manifest


def restore(source: Path | str, *, force: bool = False, settings: Settings | None = None,
            progress: Callable[[str], None] | None = None) -> RestoreResult:
    """Restore the backup in `source` into the configured database (a fresh embedded one is
    created when BACKLOT_HOME has none); its store objects go into the configured store."""
    settings = settings or load_settings()
    folder = Path(source).expanduser().absolute()
    manifest = read_backup(folder)
    url = _database_url(settings)
    held = _data_held(url)
    if held and not force:
        what = ", ".join(f"{n} {table}" for table, n in held.items())
        raise BackupError(f"the database {_describe(url)} already holds data ({what}); restore into an empty "
                          "database (a fresh BACKLOT_HOME) or pass --force to replace it")
    temp_db = f"{url.database}_restore_{uuid.uuid4().hex[:8]}"
    temp_url = url.set(database=temp_db)
    _admin(url, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(temp_db)))
    try:
        if progress:
            progress(f"restoring {manifest.counts.get('versions', 0)} versions into a new database")
        _run_pg_tool("pg_restore", ["--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction",
                                    f"--dbname={temp_db}", str(folder / DUMP)], url)
        migrated_to, counts = _finish_restored(temp_url, manifest)
        stored = 0
        if manifest.store_included:
            if progress:
                progress(f"putting {len(manifest.objects())} objects into the store")
            stored = _put_objects_in(Store(settings.store_url), manifest, folder / OBJECTS)
        _swap(url, temp_db)
    except BaseException:
        _drop(url, temp_db)
        raise
    _forget_engines(url)
    missing = _missing_objects(Store(settings.store_url), manifest)
    return RestoreResult(_describe(url), manifest.schema_revision, migrated_to, counts, bool(held), stored, missing)


def _check_revision(revision: str | None) -> None:
    """A dump this Backlot can migrate: its revision must be one of ours (else it is newer)."""
    if revision is None:
        return
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(migrate.alembic_config())
    known = {script.revision for script in scripts.walk_revisions()}
    if revision not in known:
        raise BackupError(f"the backup's schema revision {revision} is newer than this Backlot knows (its head is "
                          f"{migrate.head_revision()}): upgrade Backlot, then restore")


def _finish_restored(url: URL, manifest: Manifest) -> tuple[str | None, dict[str, int]]:
    """Check the restored database is the one the manifest describes; migrate it to our head."""
    from sqlalchemy import create_engine

    with _connect(url) as conn:
        actual = _read_manifest_data(conn, manifest.store_url)
    if actual.schema_revision != manifest.schema_revision or actual.objects() != manifest.objects():
        raise BackupError("the dump does not match its manifest (schema revision or store objects differ); "
                          "the backup is damaged: use another backup")
    head = migrate.head_revision()
    if actual.schema_revision == head:
        return None, actual.counts
    engine = create_engine(url, poolclass=_null_pool())
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()
    return head, actual.counts


def _put_objects_in(store: Store, manifest: Manifest, objects: Path) -> int:
    """Put the backup's objects into the store: every folder assembled, every signed copy stored."""
    for sha in manifest.objects():
        if not (objects / sha[:2] / sha).is_file():
            raise BackupError(f"{objects / sha[:2] / sha} is missing from the backup; use another backup")
    for folder in manifest.folders:
        sources = [(objects / f.sha256[:2] / f.sha256, f.path) for f in folder.files]
        content_hash, _ = store.put_version(sources, folder.files)
        if content_hash != folder.content_hash:
            raise BackupError(f"the backup's folder {folder.content_hash} hashes to {content_hash}; the backup is damaged")
    for sha in manifest.signed:
        # Signed copies are bare objects, put as provenance.credentials puts them.
        store._put_object(objects / sha[:2] / sha, sha)
    return len(manifest.objects())


def _missing_objects(store: Store, manifest: Manifest) -> list[str]:
    missing = []
    for sha in sorted(manifest.objects()):
        try:
            if not store.exists(sha):
                missing.append(sha)
        except OSError:
            missing.append(sha)
    return missing


def _data_held(url: URL) -> dict[str, int]:
    """Rows in the target's tables (besides the schema revision); empty when it holds none or is absent."""
    try:
        conn = _connect(url)
    except DatabaseError:
        if _database_exists(url):
            raise
        raise BackupError(f"the database {_describe(url)} does not exist; create it (empty) first")
    with conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version' "
            "ORDER BY tablename")]
        held = {}
        for table in tables:
            exists = conn.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(table))).fetchone()[0]
            if exists:
                held[table] = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()[0]
        return held


def _swap(url: URL, temp_db: str) -> None:
    """The restored database takes the target's name: two renames in one transaction."""
    old = f"{url.database}_old_{uuid.uuid4().hex[:8]}"
    with _connect(url.set(database="postgres"), autocommit=True) as conn:
        _terminate(conn, url.database)
        _terminate(conn, temp_db)
        with conn.transaction():
            conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(url.database),
                                                                           sql.Identifier(old)))
            conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(temp_db),
                                                                           sql.Identifier(url.database)))
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(old)))


def _terminate(conn: psycopg.Connection, database: str) -> None:
    """End other sessions on `database` (a rename needs it unused); they reconnect to the new one."""
    conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                 (database,))


def _drop(url: URL, database: str) -> None:
    try:
        _admin(url, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
    except DatabaseError:
        pass  # the original error matters more; a leftover is named `<db>_restore_...`


def _forget_engines(url: URL) -> None:
    """This process's pooled connections to the replaced database are gone: drop them."""
    from backlot.db import engine

    rendered = url.render_as_string(hide_password=False)
    engine._engine_for(rendered).dispose()
    engine._checked.discard(make_url(rendered))


# -- PostgreSQL plumbing -------------------------------------------------------------------------


def _database_url(settings: Settings) -> URL:
    from backlot.db.engine import resolve_url

    return make_url(resolve_url(settings))  # starts the embedded server (a fresh one in a fresh home)


def _describe(url: URL) -> str:
    return f"{url.database} on {url.host}:{url.port or 5432}"


def _libpq_params(url: URL) -> dict[str, Any]:
    params: dict[str, Any] = {"host": url.host or "localhost", "port": url.port or 5432, "user": url.username,
                              "dbname": url.database}
    if url.password:
        params["password"] = url.password
    params |= {k: v for k, v in url.query.items() if isinstance(v, str)}
    return params


def _connect(url: URL, *, autocommit: bool = True) -> psycopg.Connection:
    try:
        return psycopg.connect(**_libpq_params(url), autocommit=autocommit, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise DatabaseError(f"cannot reach the database {_describe(url)}: {str(exc).strip()}") from exc


def _admin(url: URL, statement: sql.Composable) -> None:
    with _connect(url.set(database="postgres")) as conn:
        try:
            conn.execute(statement)
        except psycopg.errors.InsufficientPrivilege as exc:
            raise DatabaseError(f"{url.username} may not create or drop databases on {url.host}; restore needs a "
                                f"role with CREATEDB ({exc.diag.message_primary})") from exc


def _database_exists(url: URL) -> bool:
    try:
        with _connect(url.set(database="postgres")) as conn:
            return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (url.database,)).fetchone() is not None
    except DatabaseError:
        return True  # unknown: let the first error stand


def _run_pg_tool(tool: str, args: list[str], url: URL) -> None:
    """Run pg_dump/pg_restore against `url`'s server; the password goes by environment, never argv."""
    env = {**os.environ, "PGHOST": url.host or "localhost", "PGPORT": str(url.port or 5432),
           "PGUSER": url.username or "", "PGCONNECT_TIMEOUT": "10"}
    if url.password:
        env["PGPASSWORD"] = url.password
    if (mode := url.query.get("sslmode")) and isinstance(mode, str):
        env["PGSSLMODE"] = mode
    try:
        result = subprocess.run([str(find_pg_bin() / tool), *args], capture_output=True, text=True, env=env,
                                stdin=subprocess.DEVNULL, timeout=PG_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise DatabaseError(f"{tool} did not finish in {PG_TIMEOUT_S}s") from exc
    if result.returncode != 0:
        tail = " ".join(result.stderr.strip().splitlines()[-3:]) or f"exit status {result.returncode}"
        raise BackupError(f"{tool} failed: {tail}")


def _tool_version(tool: str) -> str:
    try:
        result = subprocess.run([str(find_pg_bin() / tool), "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return result.stdout.strip().rsplit(" ", 1)[-1] or "unknown"


def _table_exists(conn: psycopg.Connection, table: str) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"public.{table}",)).fetchone()[0]


def _null_pool():
    from sqlalchemy.pool import NullPool

    return NullPool


# -- small helpers ---------------------------------------------------------------------------------


def _backlot_version() -> str:
    try:
        return metadata.version("backlot")
    except metadata.PackageNotFoundError:
        return "unknown"


def _hash_file(path: Path) -> tuple[str, int]:
    from backlot.storage import hash_file

    return hash_file(path)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    with open(path, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())


def _replace(manifest: Manifest, **changes: Any) -> Manifest:
    from dataclasses import replace

    return replace(manifest, **changes)
