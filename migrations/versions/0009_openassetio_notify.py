"""Cache invalidation for the OpenAssetIO plugin: NOTIFY `backlot_refs` when what a reference
resolves to may change.

- an asset's `latest_number` or `approved_number` moves (a version is published, approved,
  unapproved): the payload is the asset id, so a host drops its cached `?v=latest` and
  `?v=approved` of that asset and nothing else;
- a project's code changes, or projects, assets or versions are deleted: the payload is `*`
  (drop everything, stable references included: they may now name nothing).

`latest_number` and `approved_number` are maintained by triggers on `versions`, so this one
trigger on `assets` sees every cause, whichever process or tool made the change. PostgreSQL
delivers notifications at commit and folds identical ones within a transaction.

Revision ID: 0009_openassetio_notify
Revises: 0008_project_code_case
Create Date: 2026-12-05
"""
from alembic import op

revision = '0009_openassetio_notify'
down_revision = '0008_project_code_case'
branch_labels = None
depends_on = None

UPGRADE_SQL = r"""
CREATE FUNCTION backlot_notify_refs_asset() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('backlot_refs', NEW.id::text);
    RETURN NULL;
END $$;
CREATE TRIGGER assets_refs_notify AFTER UPDATE OF latest_number, approved_number ON assets
    FOR EACH ROW WHEN (OLD.latest_number IS DISTINCT FROM NEW.latest_number
                       OR OLD.approved_number IS DISTINCT FROM NEW.approved_number)
    EXECUTE FUNCTION backlot_notify_refs_asset();

CREATE FUNCTION backlot_notify_refs_all() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('backlot_refs', '*');
    RETURN NULL;
END $$;
-- Row triggers, so a statement that changes nothing sends nothing; PostgreSQL folds the
-- identical '*' payloads of one transaction into one notification.
CREATE TRIGGER projects_refs_notify AFTER UPDATE OF code ON projects
    FOR EACH ROW WHEN (OLD.code IS DISTINCT FROM NEW.code) EXECUTE FUNCTION backlot_notify_refs_all();
CREATE TRIGGER projects_refs_notify_delete AFTER DELETE ON projects
    FOR EACH ROW EXECUTE FUNCTION backlot_notify_refs_all();
CREATE TRIGGER assets_refs_notify_delete AFTER DELETE ON assets
    FOR EACH ROW EXECUTE FUNCTION backlot_notify_refs_all();
CREATE TRIGGER versions_refs_notify_delete AFTER DELETE ON versions
    FOR EACH ROW EXECUTE FUNCTION backlot_notify_refs_all();
"""

DOWNGRADE_SQL = r"""
DROP TRIGGER IF EXISTS versions_refs_notify_delete ON versions;
DROP TRIGGER IF EXISTS assets_refs_notify_delete ON assets;
DROP TRIGGER IF EXISTS projects_refs_notify_delete ON projects;
DROP TRIGGER IF EXISTS projects_refs_notify ON projects;
DROP TRIGGER IF EXISTS assets_refs_notify ON assets;
DROP FUNCTION IF EXISTS backlot_notify_refs_all();
DROP FUNCTION IF EXISTS backlot_notify_refs_asset();
"""


def upgrade() -> None:
    op.execute(UPGRADE_SQL)


def downgrade() -> None:
    op.execute(DOWNGRADE_SQL)
