"""The worker's local cache of a remote store: once per host, verified, bounded, process-safe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backlot.store_cache import CorruptObjectError, ObjectCache
from backlot.storage import plan_files

MB = 1 << 20

FETCH = """
import json, os, sys, time
from backlot.storage import Store
from backlot.store_cache import ObjectCache
cache = ObjectCache(sys.argv[1], 1 << 40)
store = Store(sys.argv[2])
start_at = float(sys.argv[4])
while time.time() < start_at:  # both processes ask at the same moment
    time.sleep(0.001)
path = cache.fetch(store, sys.argv[3])
print(json.dumps({"downloads": cache.downloads, "path": str(path)}))
"""


def _object(s3, files, name: str, size: int, seed: int) -> str:
    data = (seed.to_bytes(4, "big") * (size // 4 + 1))[:size]
    _, stored = s3.store().put_version(plan_files([files(name, data)]))
    return stored[0].sha256


def test_two_processes_fetch_one_object_once(s3, files, tmp_path):
    sha = _object(s3, files, "big.bin", 24 * MB, 7)
    start_at = time.time() + 4  # time for both interpreters to import
    procs = [subprocess.Popen([sys.executable, "-c", FETCH, str(tmp_path / "cache"), s3.url, sha, str(start_at)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
             for _ in range(2)]
    results = []
    for proc in procs:
        out, errors = proc.communicate(timeout=180)
        assert proc.returncode == 0, errors[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert sorted(r["downloads"] for r in results) == [0, 1], results  # one fetched, the other waited for it
    path = Path(results[0]["path"])
    assert path == Path(results[1]["path"]) and path.stat().st_size == 24 * MB
    import hashlib
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sha
    leftovers = [p for p in (tmp_path / "cache").rglob("*") if ".tmp-" in p.name]
    assert not leftovers, "no partial file is ever left (or visible) under the cache"


def test_eviction_by_size_least_recently_used_first(s3, files, tmp_path):
    shas = [_object(s3, files, f"o{i}.bin", MB, i) for i in range(3)]
    cache = ObjectCache(tmp_path / "cache", int(2.5 * MB), keep_recent_s=0)
    store = s3.store()
    a, b = cache.fetch(store, shas[0]), cache.fetch(store, shas[1])
    os.utime(a, ns=(time.time_ns() - 10**9, a.stat().st_mtime_ns))  # b used more recently than a
    cache.fetch(store, shas[0])  # a hit: a is now the most recently used
    os.utime(b, ns=(time.time_ns() - 10**9, b.stat().st_mtime_ns))
    cache.fetch(store, shas[2])  # over 2.5 MB: the least recently used (b) goes
    assert a.exists() and not b.exists() and cache.entry_path(shas[2]).exists()
    assert cache.stats().bytes <= 2.5 * MB and cache.downloads == 3


def test_recently_used_entries_are_not_evicted(s3, files, tmp_path):
    shas = [_object(s3, files, f"r{i}.bin", MB, 10 + i) for i in range(2)]
    cache = ObjectCache(tmp_path / "cache", MB // 2)  # default: keep what was used in the last 10 minutes
    first = cache.fetch(s3.store(), shas[0])
    cache.fetch(s3.store(), shas[1])
    assert first.exists(), "a worker between fetching a model and loading it keeps it"


def test_a_tree_heals_when_an_object_was_evicted(db_url, s3, files, tmp_path):
    import backlot
    from backlot.store_cache import local_version_folder

    with backlot.session() as s:
        backlot.create_project(s, "film")
        v = backlot.publish_version(s, "film", "refs/pair", [files("p1.bin", b"one"), files("p2.bin", b"two")],
                                    kind="reference")
    cache = ObjectCache(tmp_path / "cache", 1 << 30)
    tree = local_version_folder(s3.store(), v.content_hash, v.files, cache)
    cache._drop(v.files[0].sha256)  # what eviction does
    assert not (tree / "p1.bin").exists()
    tree = local_version_folder(s3.store(), v.content_hash, v.files, cache)
    assert (tree / "p1.bin").read_bytes() == b"one" and cache.downloads == 3


def test_an_edited_cache_entry_is_detected_and_fetched_again(s3, files, tmp_path):
    sha = _object(s3, files, "e.bin", 4096, 3)
    cache = ObjectCache(tmp_path / "cache", 1 << 30)
    path = cache.fetch(s3.store(), sha)
    os.chmod(path, 0o644)
    path.write_bytes(b"X" * 4096)  # same size, other bytes
    again = cache.fetch(s3.store(), sha)
    assert again == path and cache.downloads == 2
    import hashlib
    assert hashlib.sha256(again.read_bytes()).hexdigest() == sha


def test_bit_rot_is_caught_when_always_verifying(s3, files, tmp_path):
    sha = _object(s3, files, "rot.bin", 4096, 4)
    cache = ObjectCache(tmp_path / "cache", 1 << 30)
    path = cache.fetch(s3.store(), sha)
    st = path.stat()
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[100] ^= 1
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # corruption that leaves size and mtime alone
    assert cache.fetch(s3.store(), sha) == path and cache.downloads == 1, "the cheap check trusts the stamp"
    strict = ObjectCache(tmp_path / "cache", 1 << 30, verify="always")
    strict.fetch(s3.store(), sha)
    assert strict.downloads == 1
    import hashlib
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sha


def test_an_object_altered_in_the_store_is_refused(s3, files, tmp_path):
    sha = _object(s3, files, "alt.bin", 2048, 5)
    s3.client().put_object(Bucket=s3.bucket, Key=f"store/objects/{sha[:2]}/{sha}", Body=b"tampered")
    cache = ObjectCache(tmp_path / "cache", 1 << 30)
    with pytest.raises(CorruptObjectError, match="backlot store check"):
        cache.fetch(s3.store(), sha)
    assert not cache.entry_path(sha).exists()
    assert not [p for p in (tmp_path / "cache").rglob("*") if ".tmp-" in p.name]
