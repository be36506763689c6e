"""Alembic: one head, up/down/up on real PostgreSQL, and the models match the migrations."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from pipeline.db import migrate
from pipeline.db.schema import Base
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
