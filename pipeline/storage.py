"""Content-addressed file store.

Layout under the root (a local folder, or any fsspec URL for shared storage):

    objects/ab/abcdef...          one file per distinct content (sha256)
    versions/<manifest sha256>/   the files of one version under their relative names

Objects are written atomically: a temporary file in the same folder, fsync, then rename,
so a crash never leaves a half file under a final name. A version folder is assembled
under a temporary name (hard links to the objects where the filesystem allows, copies
otherwise) and renamed into place. Storing the same bytes twice writes nothing new.

On S3 (`s3://bucket/prefix`, through s3fs) a PUT is atomic by itself, so objects are written
straight to their final key; a version folder is a set of server-side copies, completed
file by file (a crash mid-way is finished by the next publish of the same content). Workers
read remote objects through a local verified cache (`backlot.store_cache`). Storing bytes
that already exist refreshes the object's modification time, so `backlot store gc` (which
only removes unreferenced objects older than a grace period) never removes an object a
publish in flight has just reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, Sequence

from backlot.errors import InvalidInputError

if TYPE_CHECKING:
    from backlot.config import StoreOptions

ATOMIC_PUT_PROTOCOLS = ("s3", "s3a", "gs", "gcs", "az", "abfs")  # object stores: a PUT is all or nothing
REMOTE_CONCURRENCY = 16  # requests in flight at once to a remote store
SMALL_OBJECT = 4 << 20  # on an object store, PUT objects up to this size without asking first
TOUCH_AFTER_S = 60.0  # a reused remote object older than this has its time refreshed (one request)

CHUNK = 1 << 20


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object (or leftover temporary file) as listed: its key, size and age."""

    path: str
    sha256: str | None  # None for a temporary or foreign file
    size: int
    mtime: float  # seconds since the epoch


@dataclass(frozen=True)
class StoredFile:
    path: str  # relative name inside the version, POSIX separators
    sha256: str
    size: int


def hash_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def manifest_hash(files: Iterable[StoredFile]) -> str:
    """The content hash of a version: sha256 over its sorted (name, sha256, size) list."""
    entries = sorted((f.path, f.sha256, f.size) for f in files)
    return hashlib.sha256(json.dumps(entries, separators=(",", ":")).encode()).hexdigest()


def check_relative_name(name: str) -> str:
    """A file name inside a version: relative, no `..`, no empty parts."""
    parts = name.replace("\\", "/").split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise InvalidInputError(f"file name {name!r} must be a relative path without '.', '..' or empty parts")
    return "/".join(parts)


def plan_files(sources: Sequence[Path | str], names: Sequence[str] | None = None) -> list[tuple[Path, str]]:
    """Pair each source file with its name in the version (its base name unless given).

    Checks every file is a readable regular file and names are unique, before anything is written.
    """
    if not sources:
        raise InvalidInputError("a version needs at least one file")
    if names is not None and len(names) != len(sources):
        raise InvalidInputError("give one name per file")
    planned: list[tuple[Path, str]] = []
    seen: set[str] = set()
    for index, source in enumerate(sources):
        path = Path(source)
        if not path.is_file():
            raise InvalidInputError(f"{path}: no such file (publish regular files; pass each frame of a sequence)")
        if not os.access(path, os.R_OK):
            raise InvalidInputError(f"{path}: file is not readable")
        name = check_relative_name(names[index] if names is not None else path.name)
        if name in seen:
            raise InvalidInputError(f"two files would both be stored as {name!r}; rename one or pass names")
        seen.add(name)
        planned.append((path, name))
    return planned


class Store:
    """The store behind a root URL. Local paths use the OS directly; other URLs go through fsspec."""

    def __init__(self, root: str, options: "StoreOptions | None" = None):
        self.root = root
        self.local = "://" not in root or root.startswith("file://")
        self.protocol = "file" if self.local else root.split("://", 1)[0]
        if self.local:
            self._root_path = Path(root.removeprefix("file://")).expanduser()
        else:
            import fsspec

            try:
                self._fs, self._fs_root = fsspec.core.url_to_fs(root, **remote_options(self.protocol, options))
            except ImportError as exc:
                extra = " (pip install 'backlot[s3]')" if self.protocol in ("s3", "s3a") else ""
                raise InvalidInputError(f"store {root}: no fsspec driver for {self.protocol}:// ({exc}){extra}") from None

    # -- addresses ---------------------------------------------------------------------------

    def object_path(self, sha256: str) -> str:
        return self._join("objects", sha256[:2], sha256)

    def version_dir(self, content_hash: str) -> str:
        return self._join("versions", content_hash)

    def version_file(self, content_hash: str, name: str) -> str:
        return self._join("versions", content_hash, name)

    def url(self, path: str) -> str:
        """A URL for a stored path (file:// for local stores)."""
        return Path(path).resolve().as_uri() if self.local else self._fs.unstrip_protocol(path)

    def _join(self, *parts: str) -> str:
        if self.local:
            return str(self._root_path.joinpath(*parts))
        return "/".join([self._fs_root.rstrip("/"), *parts])

    # -- writes ------------------------------------------------------------------------------

    def put_version(self, files: Sequence[tuple[Path, str]], hashed: Sequence[StoredFile] | None = None) -> tuple[str, list[StoredFile]]:
        """Store the files of one version; return (content hash, stored files)."""
        stored = list(hashed) if hashed is not None else [StoredFile(name, *hash_file(src)) for src, name in files]
        content_hash = manifest_hash(stored)
        if self.protocol in ATOMIC_PUT_PROTOCOLS:
            self._put_version_remote(files, stored, content_hash)
            return content_hash, stored
        self._each([lambda source=source, entry=entry: self._put_object(source, entry.sha256, entry.size)
                    for (source, _name), entry in zip(files, stored)])
        self._assemble_version(content_hash, stored)
        return content_hash, stored

    def _put_version_remote(self, files: Sequence[tuple[Path, str]], stored: Sequence[StoredFile],
                            content_hash: str) -> None:
        """On an object store: objects and the small files of the version folder are PUT in one
        concurrent round (each PUT is atomic); large folder files are then server-side copies of
        their objects. Folder files already there are left alone, which also completes a folder
        a crashed publish left half-copied."""
        final = self.version_dir(content_hash)
        present = {p.rstrip("/") for p in self._fs.find(final)}
        calls, copies = [], []
        for (source, _name), entry in zip(files, stored):
            calls.append(lambda source=source, entry=entry: self._put_object(source, entry.sha256, entry.size))
            target = "/".join([final, entry.path])
            if target in present:
                continue
            if entry.size <= SMALL_OBJECT:
                calls.append(lambda source=source, target=target: self._fs.put_file(str(source), target))
            else:
                copies.append(lambda target=target, sha=entry.sha256: self._fs.copy(self.object_path(sha), target))
        self._each(calls)
        self._each(copies)

    def _each(self, calls: Sequence) -> None:
        """Run independent store calls: in order locally, concurrently on a remote store (each is
        a round trip there; a render's frames would otherwise pay them one after another)."""
        if self.local or len(calls) < 2:
            for call in calls:
                call()
            return
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(REMOTE_CONCURRENCY, len(calls))) as pool:
            for future in [pool.submit(call) for call in calls]:
                future.result()

    def _put_object(self, source: Path, sha256: str, size: int | None = None) -> None:
        target = self.object_path(sha256)
        if self.local:
            if os.path.exists(target):
                _touch_local(target)
                return
            os.makedirs(os.path.dirname(target), exist_ok=True)
            temp = f"{target}.tmp-{uuid.uuid4().hex}"
            with open(source, "rb") as src, open(temp, "wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK)
                dst.flush()
                os.fsync(dst.fileno())
            os.chmod(temp, 0o444)  # read-only: version folders hard-link to it, so an edit there would reach it
            os.replace(temp, target)
            _fsync_dir(os.path.dirname(target))
            return
        if self.protocol in ATOMIC_PUT_PROTOCOLS and size is not None and size <= SMALL_OBJECT:
            self._fs.put_file(str(source), target)  # one request; rewriting the same bytes also refreshes its time
            return
        if self._fs.exists(target):
            self._touch_remote(target)
            return
        if self.protocol in ATOMIC_PUT_PROTOCOLS:
            self._fs.put_file(str(source), target)
            return
        temp = f"{target}.tmp-{uuid.uuid4().hex}"
        self._fs.put_file(str(source), temp)
        self._fs.mv(temp, target)

    def _assemble_version(self, content_hash: str, stored: Sequence[StoredFile]) -> None:
        final = self.version_dir(content_hash)
        if self.local:
            if os.path.isdir(final):
                return
            temp = f"{final}.tmp-{uuid.uuid4().hex}"
            for entry in stored:
                target = os.path.join(temp, entry.path)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                try:
                    os.link(self.object_path(entry.sha256), target)
                except OSError:
                    shutil.copyfile(self.object_path(entry.sha256), target)
            os.makedirs(temp, exist_ok=True)
            try:
                os.rename(temp, final)
            except OSError:
                shutil.rmtree(temp, ignore_errors=True)  # another process assembled it first
                if not os.path.isdir(final):
                    raise
            _fsync_dir(os.path.dirname(final))
            return
        present = {p.rstrip("/") for p in self._fs.find(final)}
        missing = [("/".join([final, entry.path]), entry.sha256) for entry in stored]
        # only what is absent: this also completes a folder a crashed publish left half-copied
        self._each([lambda target=target, sha=sha: self._fs.copy(self.object_path(sha), target)
                    for target, sha in missing if target not in present])

    # -- reads -------------------------------------------------------------------------------

    def exists(self, sha256: str) -> bool:
        path = self.object_path(sha256)
        return os.path.exists(path) if self.local else self._fs.exists(path)

    def open_object(self, sha256: str):
        path = self.object_path(sha256)
        return open(path, "rb") if self.local else self._fs.open(path, "rb")

    def object_info(self, sha256: str) -> ObjectInfo | None:
        """The object's size and modification time, None when it is missing."""
        path = self.object_path(sha256)
        if self.local:
            try:
                st = os.stat(path)
            except FileNotFoundError:
                return None
            return ObjectInfo(path, sha256, st.st_size, st.st_mtime)
        try:
            info = self._fs.info(path)
        except FileNotFoundError:
            return None
        return ObjectInfo(path, sha256, int(info["size"]), _remote_mtime(info))

    def list_objects(self) -> Iterator[ObjectInfo]:
        """Every file under objects/, with temporaries (sha256 None) left by a crash."""
        base = self._join("objects")
        if self.local:
            for folder, _, names in os.walk(base):
                for name in names:
                    path = os.path.join(folder, name)
                    try:
                        st = os.stat(path)
                    except FileNotFoundError:
                        continue  # removed while listing
                    yield ObjectInfo(path, _object_name(name), st.st_size, st.st_mtime)
            return
        if not self._fs.exists(base):
            return
        for path, info in self._fs.find(base, detail=True).items():
            yield ObjectInfo(path, _object_name(path.rsplit("/", 1)[-1]), int(info["size"]), _remote_mtime(info))

    def list_version_folders(self) -> dict[str, float]:
        """Version folder name (content hash, or a temporary name) -> newest modification time."""
        base = self._join("versions")
        if self.local:
            if not os.path.isdir(base):
                return {}
            return {name: os.stat(os.path.join(base, name)).st_mtime for name in os.listdir(base)}
        if not self._fs.exists(base):
            return {}
        folders: dict[str, float] = {}
        for path, info in self._fs.find(base, detail=True).items():
            name = path[len(base.rstrip("/")) + 1:].split("/", 1)[0]
            folders[name] = max(folders.get(name, 0.0), _remote_mtime(info))
        return folders

    def remove_path(self, path: str) -> None:
        """Remove one object file, or one version folder with everything in it."""
        if self.local:
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.lexists(path):
                os.chmod(path, 0o644)
                os.unlink(path)
            return
        self._fs.rm(path, recursive=True)

    def hash_object(self, sha256: str) -> tuple[str, int]:
        """The sha256 and size of the object's bytes as stored now (reads all of it)."""
        digest = hashlib.sha256()
        size = 0
        with self.open_object(sha256) as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
        return digest.hexdigest(), size

    def _touch_remote(self, path: str) -> None:
        """Refresh an object's time so gc's grace period covers the publish reusing it."""
        if self.protocol not in ("s3", "s3a"):
            return  # other drivers have no cheap touch; their gc relies on the grace period alone
        try:
            if time.time() - _remote_mtime(self._fs.info(path)) > TOUCH_AFTER_S:
                self._fs.setxattr(path, copy_kwargs={}, backlot_touched=str(int(time.time())))
        except FileNotFoundError:
            pass  # removed between exists and now: the caller's exists check is repeated by gc's grace

    def count_objects(self) -> int:
        base = self._join("objects")
        if self.local:
            return sum(len([f for f in files if ".tmp-" not in f]) for _, _, files in os.walk(base))
        return len([p for p in self._fs.find(base) if ".tmp-" not in p])


def remote_options(protocol: str, options: "StoreOptions | None" = None) -> dict:
    """fsspec keyword arguments for a remote store: for S3, endpoint, region and profile from
    the settings (environment first, then backlot.toml); credentials are botocore's own chain."""
    if protocol not in ("s3", "s3a"):
        return {}
    if options is None:
        from backlot.config import load_settings

        options = load_settings().store_options
    kwargs: dict = {"use_listings_cache": False}  # other processes write and gc removes: never trust a listing
    client: dict = {}
    if options.endpoint_url:
        client["endpoint_url"] = options.endpoint_url
    if options.region:
        client["region_name"] = options.region
    if client:
        kwargs["client_kwargs"] = client
    if options.profile:
        kwargs["profile"] = options.profile
    return kwargs


def _object_name(name: str) -> str | None:
    return None if ".tmp-" in name or len(name) != 64 else name


def _remote_mtime(info: dict) -> float:
    stamp = info.get("LastModified") or info.get("mtime") or info.get("updated")
    if stamp is None:
        return time.time()  # unknown age: treat as new, so gc keeps it
    if hasattr(stamp, "timestamp"):
        return stamp.timestamp()
    if isinstance(stamp, str):
        from datetime import datetime

        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    return float(stamp)


def _touch_local(path: str) -> None:
    try:
        os.utime(path)
    except PermissionError:
        pass  # an object owned by another user on a shared folder: gc's grace period still applies


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
