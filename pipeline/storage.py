"""Content-addressed file store.

Layout under the root (a local folder, or any fsspec URL for shared storage):

    objects/ab/abcdef...          one file per distinct content (sha256)
    versions/<manifest sha256>/   the files of one version under their relative names

Objects are written atomically: a temporary file in the same folder, fsync, then rename,
so a crash never leaves a half file under a final name. A version folder is assembled
under a temporary name (hard links to the objects where the filesystem allows, copies
otherwise) and renamed into place. Storing the same bytes twice writes nothing new.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from backlot.errors import InvalidInputError

CHUNK = 1 << 20


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

    def __init__(self, root: str):
        self.root = root
        self.local = "://" not in root or root.startswith("file://")
        if self.local:
            self._root_path = Path(root.removeprefix("file://")).expanduser()
        else:
            import fsspec

            self._fs, self._fs_root = fsspec.core.url_to_fs(root)

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
        for (source, _name), entry in zip(files, stored):
            self._put_object(source, entry.sha256)
        content_hash = manifest_hash(stored)
        self._assemble_version(content_hash, stored)
        return content_hash, stored

    def _put_object(self, source: Path, sha256: str) -> None:
        target = self.object_path(sha256)
        if self.local:
            if os.path.exists(target):
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
        if self._fs.exists(target):
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
        if self._fs.exists(final):
            return
        for entry in stored:
            self._fs.copy(self.object_path(entry.sha256), "/".join([final, entry.path]))

    # -- reads -------------------------------------------------------------------------------

    def exists(self, sha256: str) -> bool:
        path = self.object_path(sha256)
        return os.path.exists(path) if self.local else self._fs.exists(path)

    def open_object(self, sha256: str):
        path = self.object_path(sha256)
        return open(path, "rb") if self.local else self._fs.open(path, "rb")

    def count_objects(self) -> int:
        base = self._join("objects")
        if self.local:
            return sum(len([f for f in files if ".tmp-" not in f]) for _, _, files in os.walk(base))
        return len([p for p in self._fs.find(base) if ".tmp-" not in p])


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
