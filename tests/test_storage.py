"""The content-addressed store: atomic, deduplicated, files of a version kept together."""

from __future__ import annotations

import os

import pytest

import backlot
from backlot.errors import InvalidInputError
from backlot.storage import Store, check_relative_name, hash_file, manifest_hash, plan_files


def test_version_files_are_stored_by_hash_and_kept_together(tmp_path, files):
    store = Store(str(tmp_path / "store"))
    planned = plan_files([files("f1.png", "one"), files("f2.png", "two")], ["frames/0001.png", "frames/0002.png"])
    content_hash, stored = store.put_version(planned)
    assert [f.path for f in stored] == ["frames/0001.png", "frames/0002.png"]
    assert content_hash == manifest_hash(stored)
    folder = tmp_path / "store" / "versions" / content_hash / "frames"
    assert (folder / "0001.png").read_text() == "one" and (folder / "0002.png").read_text() == "two"
    for entry in stored:
        with store.open_object(entry.sha256) as handle:
            assert handle.read() == (b"one" if entry.path.endswith("1.png") else b"two")
    assert not [p for p in (tmp_path / "store").rglob("*") if ".tmp-" in p.name], "no temporary files left"


def test_same_bytes_twice_store_nothing_new(tmp_path, files):
    store = Store(str(tmp_path / "store"))
    store.put_version(plan_files([files("a.png", "same")]))
    before = sorted(str(p) for p in (tmp_path / "store").rglob("*"))
    inodes = {p: os.stat(p).st_ino for p in before}
    store.put_version(plan_files([files("b/a.png", "same")]))
    after = sorted(str(p) for p in (tmp_path / "store").rglob("*"))
    assert after == before and {p: os.stat(p).st_ino for p in after} == inodes
    assert store.count_objects() == 1


def test_published_versions_share_objects(session, files):
    backlot.create_project(session, "film")
    store = Store(os.environ["BACKLOT_STORE"])
    a = backlot.publish_version(session, "film", "a", [files("x.png", "pixels")], kind="reference")
    b = backlot.publish_version(session, "film", "b", [files("y/x.png", "pixels")], kind="reference")
    assert a.content_hash == b.content_hash and store.count_objects() == 1


def test_fsspec_store_on_a_non_local_url(files):
    store = Store("memory://backlot-test-store")
    content_hash, stored = store.put_version(plan_files([files("m.bin", b"\x00\x01")]))
    assert store.exists(stored[0].sha256)
    with store.open_object(stored[0].sha256) as handle:
        assert handle.read() == b"\x00\x01"
    assert store.url(store.version_file(content_hash, "m.bin")).startswith("memory://")


@pytest.mark.parametrize("name", ["/abs.png", "../up.png", "a/../../b", "", "a//b", "./a"])
def test_bad_relative_names(name):
    with pytest.raises(InvalidInputError):
        check_relative_name(name)


def test_unreadable_and_missing_files(tmp_path, files):
    with pytest.raises(InvalidInputError, match="no such file"):
        plan_files([tmp_path / "nope.png"])
    with pytest.raises(InvalidInputError, match="no such file"):
        plan_files([tmp_path])  # a folder is not a file
    if os.geteuid() != 0:  # root reads everything
        locked = files("locked.png")
        locked.chmod(0)
        with pytest.raises(InvalidInputError, match="not readable"):
            plan_files([locked])


def test_hash_file_streams_large_files(tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * (3 * (1 << 20) + 5))
    sha, size = hash_file(big)
    assert size == 3 * (1 << 20) + 5 and len(sha) == 64
