"""A host's local, content-addressed cache of what it reads from a remote store.

Layout under the cache folder (BACKLOT_CACHE_DIR, default BACKLOT_HOME/cache):

    objects/ab/abcdef...     one verified, read-only file per object read from the store
    objects/ab/abcdef....ok  the (size, mtime) the object had when its sha256 was checked
    trees/<content hash>/    a version's files under their names, as symlinks into objects/
    locks/ab/abcdef....lock  one lock file per object: one process downloads, the others wait

- **Once per host**: the first process to want an object takes its lock and downloads it;
  the others block on the lock, then find it there.
- **Verified**: the download is hashed as it streams and only renamed into place when its
  sha256 is right, so no partial or wrong file is ever visible under an object's name. A hit
  is re-hashed when the file's size or mtime differ from its `.ok` stamp (an edit, a
  truncation), or always with BACKLOT_CACHE_VERIFY=always (bit rot); a bad entry is dropped
  and fetched again.
- **Bounded**: after a download, entries are evicted least recently used first (access times
  are set explicitly on every hit, so `noatime` mounts do not matter) until the cache is under
  BACKLOT_CACHE_MAX_GB. Entries used within the last `keep_recent_s` seconds are kept, so
  a process between fetching a model and loading it does not lose it; a tree whose link
  was evicted is healed on its next use, when the object is fetched again.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

from filelock import FileLock, Timeout

from backlot.errors import InvalidInputError

if TYPE_CHECKING:
    from backlot.storage import Store, StoredFile

CHUNK = 1 << 20
KEEP_RECENT_S = 600.0


class CorruptObjectError(InvalidInputError):
    """The store's bytes for an object do not hash to its name."""


@dataclass(frozen=True)
class CacheStats:
    entries: int
    bytes: int


class ObjectCache:
    def __init__(self, root: Path | str, max_bytes: int, *, verify: str = "stat", keep_recent_s: float = KEEP_RECENT_S):
        if verify not in ("stat", "always"):
            raise InvalidInputError(f"BACKLOT_CACHE_VERIFY {verify!r} must be 'stat' or 'always'")
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.verify = verify
        self.keep_recent_s = keep_recent_s
        self.downloads = 0  # objects this instance fetched from the store (tests, benchmarks)

    # -- addresses ---------------------------------------------------------------------------

    def entry_path(self, sha256: str) -> Path:
        return self.root / "objects" / sha256[:2] / sha256

    def _stamp_path(self, sha256: str) -> Path:
        return self.root / "objects" / sha256[:2] / f"{sha256}.ok"

    def _lock(self, sha256: str) -> FileLock:
        folder = self.root / "locks" / sha256[:2]
        folder.mkdir(parents=True, exist_ok=True)
        return FileLock(str(folder / f"{sha256}.lock"))

    # -- reads -------------------------------------------------------------------------------

    def fetch(self, store: Store, sha256: str, *, keep: Iterable[str] = ()) -> Path:
        """The local path of a verified copy of the object, downloading it once per host."""
        path = self.entry_path(sha256)
        if self._valid(sha256, path):
            _touch(path)
            return path
        with self._lock(sha256):
            if not self._valid(sha256, path):  # another process may have fetched it while we waited
                self._drop(sha256)
                self._download(store, sha256, path)
            _touch(path)
        self.evict(keep={sha256, *keep})
        return path

    def version_tree(self, store: Store, content_hash: str, files: Sequence[StoredFile]) -> Path:
        """A local folder with a version's files under their names (symlinks to verified objects)."""
        wanted = {f.sha256 for f in files}
        for entry in files:
            self.fetch(store, entry.sha256, keep=wanted)
        tree = self.root / "trees" / content_hash
        if not tree.is_dir():
            self._build_tree(tree, files)
        return tree

    def _build_tree(self, tree: Path, files: Sequence[StoredFile]) -> None:
        temp = tree.parent / f".tmp-{uuid.uuid4().hex}"
        for entry in files:
            link = temp / entry.path
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(self.entry_path(entry.sha256), link)
        temp.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(temp, tree)
        except OSError:
            _remove_tree(temp)  # another process built it first
            if not tree.is_dir():
                raise

    def _valid(self, sha256: str, path: Path) -> bool:
        try:
            st = path.stat()
            stamp = self._stamp_path(sha256).read_text().split()
        except (FileNotFoundError, NotADirectoryError):
            return False
        if self.verify == "stat" and stamp == [str(st.st_size), str(st.st_mtime_ns)]:
            return True
        if _hash_path(path) != sha256:
            return False
        self._write_stamp(sha256, path)
        return True

    def _download(self, store: Store, sha256: str, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.parent / f".tmp-{uuid.uuid4().hex}"
        digest = hashlib.sha256()
        try:
            with store.open_object(sha256) as src, open(temp, "wb") as dst:
                while chunk := src.read(CHUNK):
                    digest.update(chunk)
                    dst.write(chunk)
                dst.flush()
                os.fsync(dst.fileno())
            if digest.hexdigest() != sha256:
                raise CorruptObjectError(f"object {sha256[:12]}… in {store.root} hashes to {digest.hexdigest()[:12]}…: "
                                         "it was altered in the store; run `backlot store check`")
            os.chmod(temp, 0o444)  # trees link to it: an edit through a tree must not reach it
            os.replace(temp, path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        self._write_stamp(sha256, path)
        self.downloads += 1

    def _write_stamp(self, sha256: str, path: Path) -> None:
        st = path.stat()
        stamp = self._stamp_path(sha256)
        temp = stamp.parent / f".tmp-{uuid.uuid4().hex}"
        temp.write_text(f"{st.st_size} {st.st_mtime_ns}\n")
        os.replace(temp, stamp)

    def _drop(self, sha256: str) -> None:
        for path in (self._stamp_path(sha256), self.entry_path(sha256)):
            try:
                os.chmod(path, 0o644)
                path.unlink()
            except FileNotFoundError:
                pass

    # -- eviction ----------------------------------------------------------------------------

    def stats(self) -> CacheStats:
        entries = list(self._entries())
        return CacheStats(len(entries), sum(size for _, size, _ in entries))

    def _entries(self) -> Iterable[tuple[str, int, float]]:
        base = self.root / "objects"
        if not base.is_dir():
            return
        for folder in base.iterdir():
            for path in folder.iterdir() if folder.is_dir() else ():
                if len(path.name) != 64:
                    continue  # stamps and temporaries
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue
                yield path.name, st.st_size, st.st_atime

    def evict(self, keep: Iterable[str] = ()) -> int:
        """Remove least recently used entries until the cache fits; returns bytes freed.

        One process evicts at a time (the others skip: it is doing their work). An entry is
        removed under its own lock, so it is never dropped while being downloaded."""
        kept = set(keep)
        entries = list(self._entries())
        total = sum(size for _, size, _ in entries)
        if total <= self.max_bytes:
            return 0
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            guard = FileLock(str(self.root / "evict.lock"), timeout=0)
            guard.acquire()
        except Timeout:
            return 0
        freed = 0
        try:
            recent = time.time() - self.keep_recent_s
            for sha256, size, used in sorted(entries, key=lambda e: e[2]):
                if total - freed <= self.max_bytes:
                    break
                if sha256 in kept or used > recent:
                    continue
                lock = self._lock(sha256)
                try:
                    lock.acquire(timeout=0)
                except Timeout:
                    continue  # being fetched right now
                try:
                    self._drop(sha256)
                finally:
                    lock.release()
                freed += size
        finally:
            guard.release()
        return freed


def object_cache(settings=None) -> ObjectCache:
    """The host's cache, configured from settings (BACKLOT_CACHE_DIR, BACKLOT_CACHE_MAX_GB)."""
    from backlot.config import load_settings

    settings = settings or load_settings()
    return ObjectCache(settings.cache_dir or settings.home / "cache", int(settings.cache_max_gb * 1024 ** 3),
                       verify=os.environ.get("BACKLOT_CACHE_VERIFY", "stat"))


def local_version_folder(store: Store, content_hash: str, files: Sequence[StoredFile],
                         cache: ObjectCache | None = None) -> Path:
    """A local folder with a version's files: the store's own folder on a local store, else
    a tree in the host's verified cache."""
    if store.local:
        return Path(store.version_dir(content_hash))
    return (cache or object_cache()).version_tree(store, content_hash, files)


def local_object(store: Store, sha256: str, cache: ObjectCache | None = None) -> Path:
    """A local, verified path of one object (through the cache on a remote store)."""
    if store.local:
        return Path(store.object_path(sha256))
    return (cache or object_cache()).fetch(store, sha256)


def _hash_path(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _touch(path: Path) -> None:
    """Mark an entry used now (atime only: mtime is the verification stamp)."""
    try:
        st = path.stat()
        os.utime(path, ns=(time.time_ns(), st.st_mtime_ns))
    except (FileNotFoundError, PermissionError):
        pass


def _remove_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        path.rmdir() if path.is_dir() and not path.is_symlink() else path.unlink()
    folder.rmdir()
