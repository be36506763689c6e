"""Alembic: one head, up/down/up on real PostgreSQL, and the models match the migrations."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

from backlot.db import migrate
from backlot.db.schema import Base
from backlot.errors import ConflictError
from tests.conftest import create_database, drop_database


def test_exactly_one_head():
    assert len(ScriptDirectory.from_config(migrate.alembic_config()).get_heads()) == 1


def test_upgrade_downgrade_upgrade(template_url):
    url = create_database(template_url, "m", migrated=False)
    engine = create_engine(url)
    try:
        migrate.upgrade(engine)
        tables = set(inspect(engine).get_table_names())
        assert {"projects", "versions", "version_inputs", "live_inputs", "events"} <= tables
        migrate.downgrade(engine, "base")
        assert set(inspect(engine).get_table_names()) == {"alembic_version"}
        with engine.connect() as conn:
            types = conn.execute(text("SELECT typname FROM pg_type WHERE typname IN ('asset_kind', 'version_status')"))
            assert types.all() == [], "downgrade drops the enum types too"
            functions = conn.execute(text("SELECT proname FROM pg_proc WHERE proname LIKE 'backlot_%'")).all()
            assert functions == []
        migrate.upgrade(engine)
        with engine.connect() as conn:
            assert migrate.current_revision(conn) == migrate.head_revision()
    finally:
        engine.dispose()
        drop_database(url)


def test_models_match_migrations(shared_db_url):
    engine = create_engine(shared_db_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": False})
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()


def test_version_media_is_filled_in_for_existing_versions(template_url, tmp_path):
    """0006 finds the first image and movie of versions published before it."""
    url = create_database(template_url, "m", migrated=False)
    engine = create_engine(url)
    try:
        migrate.upgrade(engine, "0005")
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO projects (code, name, fps_num, fps_den, width, height, stale_policy, "
                              "created_at) VALUES ('p', 'p', 24, 1, 1920, 1080, 'latest', now())"))
            conn.execute(text("INSERT INTO assets (project_id, name, kind, latest_number) "
                              "VALUES (1, 'shots/a/main', 'shot_render', 0), (1, 'art', 'concept_art', 0)"))
            conn.execute(text("INSERT INTO versions (asset_id, project_id, content_hash, media_type, status, "
                              "created_by) VALUES (1, 1, 'h', 'image/png', 'wip', 't'), (2, 1, 'h', 'x', 'wip', 't')"))
            conn.execute(text("INSERT INTO version_files VALUES (1, 'f/f.1002.exr', 'a', 1), (1, 'f/f.1001.exr', "
                              "'a', 1), (1, 'm.mov', 'a', 1), (2, 'notes.txt', 'a', 1)"))
        migrate.upgrade(engine)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, first_image, first_movie FROM versions ORDER BY id")).all()
        assert [tuple(r) for r in rows] == [(1, "f/f.1001.exr", "m.mov"), (2, None, None)]
    finally:
        engine.dispose()
        drop_database(url)


def test_project_codes_that_differ_only_in_case_stop_the_upgrade(template_url):
    """0008 makes codes unique without regard to case; it names the clashes, merges nothing."""
    url = create_database(template_url, "m", migrated=False)
    engine = create_engine(url)
    try:
        migrate.upgrade(engine, "0007")
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO projects (code, name, fps_num, fps_den, width, height, stale_policy, "
                              "created_at) VALUES ('FILM', 'a', 24, 1, 1920, 1080, 'latest', now()), "
                              "('film', 'b', 24, 1, 1920, 1080, 'latest', now()), "
                              "('other', 'c', 24, 1, 1920, 1080, 'latest', now())"))
        with pytest.raises(ConflictError) as raised:
            migrate.upgrade(engine, "0008_project_code_case")
        assert "FILM (id 1) and film (id 2)" in str(raised.value) and "other" not in str(raised.value)
        with engine.connect() as conn:
            assert migrate.current_revision(conn) == "0007"
            assert conn.execute(text("SELECT count(*) FROM projects")).scalar() == 3
        with engine.begin() as conn:
            conn.execute(text("UPDATE projects SET code = 'film2' WHERE id = 2"))
        migrate.upgrade(engine, "0008_project_code_case")
        with engine.begin() as conn, pytest.raises(IntegrityError, match="uq_projects_lower_code"):
            conn.execute(text("UPDATE projects SET code = 'Other' WHERE id = 2"))
    finally:
        engine.dispose()
        drop_database(url)
