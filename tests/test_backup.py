"""Backup and restore: a round trip into a fresh BACKLOT_HOME gives the same versions, lineage and
verify; bad restores are refused and leave the target as it was, with nothing half-written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

import backlot
from backlot.db import migrate
from backlot.db.backup import DUMP, MANIFEST
from tests.generation.conftest import production, tiny_folder  # noqa: F401 - shared fixtures


def _leftover_databases(url: str) -> list[str]:
    plain = make_url(url).set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    name = make_url(url).database
    with psycopg.connect(plain, autocommit=True) as conn:
        return [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                                           (f"{name}\\_%",))]


def _projects() -> list[str]:
    with backlot.session() as s:
        return sorted(p.code for p in backlot.list_projects(s))


@pytest.fixture
def backed_up(run, db_url, files, tmp_path):
    """A database with project `a` (one version) backed up to tmp/backup."""
    run("project", "create", "a")
    run("publish", "a", "chars/hero", files("hero.png", "pixels"), "--kind", "concept_art")
    run("backup", tmp_path / "backup")
    return tmp_path / "backup"


def test_backup_writes_a_manifest_of_the_referenced_objects(backed_up, db_url):
    manifest = json.loads((backed_up / MANIFEST).read_text())
    assert manifest["schema_revision"] == migrate.head_revision()
    assert manifest["counts"]["versions"] == 1
    [folder] = manifest["folders"]
    with backlot.session() as s:
        version = backlot.get_version(s, "a/chars/hero@1")
    assert folder["content_hash"] == version.content_hash
    assert folder["files"][0]["size"] == len(b"pixels")
    assert manifest["store"] == {"url": os.environ["BACKLOT_STORE"], "included": False, "objects": 1, "bytes": 6}
    assert manifest["dump"]["size"] == (backed_up / DUMP).stat().st_size
    assert not (backed_up / "objects").exists()
    assert sorted(p.name for p in backed_up.parent.iterdir() if p.name.startswith(".backup")) == []


def test_restore_refuses_a_database_with_data_then_replaces_it_with_force(run, backed_up, db_url):
    run("project", "create", "b")
    refused = run("restore", backed_up, code=2)
    assert "already holds data" in refused.stderr and "--force" in refused.stderr
    assert _projects() == ["a", "b"]
    run("restore", backed_up, "--force")
    assert _projects() == ["a"]
    assert _leftover_databases(db_url) == []


def test_restore_refuses_damaged_or_newer_backups_and_changes_nothing(run, backed_up, db_url, tmp_path):
    run("project", "create", "b")
    manifest = json.loads((backed_up / MANIFEST).read_text())

    newer = tmp_path / "newer"
    newer.mkdir()
    (newer / DUMP).write_bytes((backed_up / DUMP).read_bytes())
    (newer / MANIFEST).write_text(json.dumps(manifest | {"schema_revision": "9999_from_the_future"}))
    assert "newer than this Backlot" in run("restore", newer, "--force", code=2).stderr

    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    data = bytearray((backed_up / DUMP).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (corrupt / DUMP).write_bytes(bytes(data))
    (corrupt / MANIFEST).write_text(json.dumps(manifest))
    assert "is corrupt" in run("restore", corrupt, "--force", code=2).stderr

    # A dump that matches its manifest's hash but is not a dump: pg_restore fails, nothing changes.
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / DUMP).write_bytes(b"not a dump")
    import hashlib

    (garbage / MANIFEST).write_text(json.dumps(manifest | {"dump": {
        "file": DUMP, "sha256": hashlib.sha256(b"not a dump").hexdigest(), "size": 10}}))
    assert "pg_restore failed" in run("restore", garbage, "--force", code=2).stderr

    (corrupt / DUMP).unlink()
    assert "is missing" in run("restore", corrupt, code=2).stderr
    assert "not a Backlot backup" in run("restore", tmp_path, code=2).stderr
    assert _projects() == ["a", "b"]
    assert _leftover_databases(db_url) == []


def test_backup_refuses_a_folder_in_use_and_leaves_nothing(run, backed_up, tmp_path):
    assert "not an empty folder" in run("backup", backed_up, code=2).stderr
    (tmp_path / "store").rename(tmp_path / "store-gone")  # --with-store with the objects gone
    failed = run("backup", tmp_path / "second", "--with-store", code=2)
    assert "not in the store" in failed.stderr
    assert not (tmp_path / "second").exists()
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []


def _cli(env: dict[str, str], *args, check=True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "backlot.services.cli", *map(str, args)], env=env,
                            capture_output=True, text=True, timeout=600)
    if check:
        assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result


def test_restore_into_a_fresh_home_gives_the_same_versions_lineage_and_verify(production, tmp_path):
    from backlot import generation as gen

    with backlot.session() as s:
        settings = gen.RenderSettings(prompt="a test shot", seed=3, steps=2, width=64, height=64)
        plan = gen.plan_render(s, "film", "sh010", settings, base_model=production["base"], frames=2)
        render = gen.publish_render(s, "film", "sh010", plan)
    source_env = dict(os.environ)
    _cli(source_env, "backup", tmp_path / "backup", "--with-store")

    fresh = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    fresh |= {"BACKLOT_HOME": str(tmp_path / "fresh-home"), "BACKLOT_STORE": str(tmp_path / "fresh-store")}
    try:
        restored = _cli(fresh, "restore", tmp_path / "backup")
        assert "restored" in restored.stdout and "put into the store" in restored.stdout
        assert "not in the store" not in restored.stderr
        for args in (("versions", "film/shots/sh010/main"), ("versions", "film/characters/mara"),
                     ("lineage", render.ref), ("lineage", production["art"], "--down")):
            assert _cli(fresh, *args).stdout == _cli(source_env, *args).stdout, args
        verified = _cli(fresh, "verify", render.ref, "--json")
        assert json.loads(verified.stdout)["identical"] is True
        assert "already holds data" in _cli(fresh, "restore", tmp_path / "backup", check=False).stderr
    finally:
        _cli(fresh, "db", "stop", check=False)
