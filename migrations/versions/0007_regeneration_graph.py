"""Regeneration over the whole lineage graph: content decides staleness, a version is never
stale because of itself, jobs wait on several jobs (and on approvals), projects choose how
regenerated adapters are approved.

Staleness (docs/stale.md):
- a version is superseded only by a newer pointer version (approved, or latest under that
  policy) whose content hash differs: a re-publish of the same bytes is no change;
- an input edge is flagged superseded unless the superseding version derives from the
  consumer (is the consumer, or is made from it, following every role but
  `regenerated_from`): a paint-over of mara@2 published as mara@3 does not make itself stale.
  Inputs always have smaller ids than their consumers, so `backlot_derives_from` only walks
  versions between the two ids.

Jobs: `job_dependencies` lists what a job waits for besides `depends_on_id` (the shot before
it in a chain): each a job that must be done and, with `approval`, whose result must be
approved. `retrain_adapter` is the job kind that replays an adapter's training recipe; `jobs.started_at`
is when its last attempt was claimed (so a job's own time is `finished_at - started_at`).
A status change of a version NOTIFYs `backlot_jobs`, which wakes the dispatcher so that a
job waiting for an approval is released at once.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""
import importlib.util
import re
from pathlib import Path

from alembic import op
import sqlalchemy as sa

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

FUNCTIONS_SQL = r"""
-- Whether `descendant` is `ancestor` or is made from it (every role but regenerated_from).
CREATE FUNCTION backlot_derives_from(descendant bigint, ancestor bigint) RETURNS boolean
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE up(id) AS (
        SELECT descendant WHERE descendant >= ancestor
      UNION
        SELECT vi.input_id FROM up JOIN version_inputs vi ON vi.version_id = up.id
        WHERE vi.role <> 'regenerated_from' AND vi.input_id >= ancestor
    )
    SELECT coalesce(EXISTS (SELECT 1 FROM up WHERE id = ancestor), false)
$$;

-- The version that supersedes (or would supersede) the versions of an asset: its pointer.
CREATE FUNCTION backlot_pointer_version(aid integer) RETURNS integer LANGUAGE sql STABLE AS $$
    SELECT v.id FROM assets a JOIN projects p ON p.id = a.project_id
    JOIN versions v ON v.asset_id = a.id AND v.number =
        CASE WHEN p.stale_policy = 'approved' THEN a.approved_number ELSE backlot_asset_pointer(a.id, p.stale_policy) END
    WHERE a.id = aid
$$;

-- The live_inputs flag of one edge: its input is superseded, by a version not derived from the consumer.
CREATE FUNCTION backlot_input_flag(consumer bigint, input bigint) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT iv.superseded AND NOT backlot_derives_from(backlot_pointer_version(iv.asset_id), consumer)
    FROM versions iv WHERE iv.id = input
$$;

-- The flags of the live edges into an asset's versions, given its pointer version: after the
-- pointer moves, and after the pointer gains an input (it may now derive from a consumer).
CREATE FUNCTION backlot_refresh_flags(aid integer, ptr_id bigint) RETURNS void LANGUAGE sql AS $$
    UPDATE live_inputs li SET input_superseded = w.want
    FROM (SELECT e.version_id, e.input_id, e.role,
                 v.superseded AND NOT backlot_derives_from(ptr_id, e.version_id) AS want
          FROM versions v JOIN live_inputs e ON e.input_id = v.id
          WHERE v.asset_id = aid AND (v.superseded OR e.input_superseded)) w
    WHERE li.version_id = w.version_id AND li.input_id = w.input_id AND li.role = w.role
      AND li.input_superseded <> w.want
$$;

CREATE OR REPLACE FUNCTION backlot_refresh_asset(aid integer) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    pol stale_policy;
    latest integer;
    approved integer;
    pointer integer;
    ptr_id integer;
    ptr_hash text;
    r record;
BEGIN
    SELECT p.stale_policy, a.latest_number INTO pol, latest
        FROM assets a JOIN projects p ON p.id = a.project_id WHERE a.id = aid FOR UPDATE OF a;
    approved := backlot_asset_pointer(aid, 'approved');
    pointer := CASE WHEN pol = 'approved' THEN approved ELSE backlot_asset_pointer(aid, pol) END;
    SELECT id, content_hash INTO ptr_id, ptr_hash FROM versions WHERE asset_id = aid AND number = pointer;
    UPDATE assets SET approved_number = approved WHERE id = aid AND approved_number IS DISTINCT FROM approved;
    PERFORM set_config('backlot.refreshing', 'on', true);
    FOR r IN
        WITH desired AS (
            SELECT id, project_id, superseded AS old_s, live AS old_l, number,
                   coalesce(number < pointer AND content_hash <> ptr_hash, false) AS s
            FROM versions WHERE asset_id = aid
        )
        UPDATE versions v SET superseded = d.s,
                              live = NOT d.s OR d.number = latest OR coalesce(d.number = approved, false)
        FROM desired d
        WHERE v.id = d.id AND (d.s <> d.old_s
                               OR d.old_l <> (NOT d.s OR d.number = latest OR coalesce(d.number = approved, false)))
        RETURNING v.id, v.project_id, d.old_l, v.live AS l
    LOOP
        IF r.l AND NOT r.old_l THEN
            INSERT INTO live_inputs (version_id, input_id, role, project_id, input_superseded)
            SELECT vi.version_id, vi.input_id, vi.role, r.project_id, backlot_input_flag(vi.version_id, vi.input_id)
            FROM version_inputs vi WHERE vi.version_id = r.id AND vi.role <> 'regenerated_from';
        ELSIF r.old_l AND NOT r.l THEN
            DELETE FROM live_inputs WHERE version_id = r.id;
        END IF;
    END LOOP;
    PERFORM backlot_refresh_flags(aid, ptr_id);
    PERFORM set_config('backlot.refreshing', 'off', true);
END $$;

CREATE OR REPLACE FUNCTION backlot_input_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    aid integer;
BEGIN
    IF NEW.role = 'regenerated_from' THEN
        RETURN NULL;
    END IF;
    -- A pointer version gaining an input may now derive from consumers of its older versions.
    SELECT asset_id INTO aid FROM versions WHERE id = NEW.version_id;
    IF backlot_pointer_version(aid) = NEW.version_id THEN
        PERFORM backlot_refresh_flags(aid, NEW.version_id);
    END IF;
    PERFORM 1 FROM versions WHERE id = NEW.input_id FOR SHARE;
    INSERT INTO live_inputs (version_id, input_id, role, project_id, input_superseded)
    SELECT NEW.version_id, NEW.input_id, NEW.role, v.project_id, backlot_input_flag(NEW.version_id, NEW.input_id)
    FROM versions v WHERE v.id = NEW.version_id AND v.live;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION backlot_rebuild_lineage_cache() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('backlot.refreshing', 'on', true);
    UPDATE assets a SET latest_number = coalesce(s.latest, 0), approved_number = s.approved
    FROM assets a2 LEFT JOIN (
        SELECT asset_id, max(number) AS latest, max(number) FILTER (WHERE status = 'approved') AS approved
        FROM versions GROUP BY asset_id
    ) s ON s.asset_id = a2.id
    WHERE a.id = a2.id
      AND (a.latest_number <> coalesce(s.latest, 0) OR a.approved_number IS DISTINCT FROM s.approved);
    WITH ptr AS (
        SELECT a.id, a.latest_number AS latest, a.approved_number AS approved, pv.number AS pointer,
               pv.content_hash AS hash
        FROM assets a LEFT JOIN versions pv ON pv.id = backlot_pointer_version(a.id)
    ), desired AS (
        SELECT v.id, coalesce(v.number < ptr.pointer AND v.content_hash <> ptr.hash, false) AS s,
               v.number = ptr.latest OR coalesce(v.number = ptr.approved, false) AS cur
        FROM versions v JOIN ptr ON ptr.id = v.asset_id
    )
    UPDATE versions v SET superseded = d.s, live = NOT d.s OR d.cur
    FROM desired d WHERE d.id = v.id AND (v.superseded <> d.s OR v.live <> (NOT d.s OR d.cur));
    DELETE FROM live_inputs;
    INSERT INTO live_inputs (version_id, input_id, role, project_id, input_superseded)
    SELECT vi.version_id, vi.input_id, vi.role, v.project_id, backlot_input_flag(vi.version_id, vi.input_id)
    FROM version_inputs vi JOIN versions v ON v.id = vi.version_id AND v.live
    WHERE vi.role <> 'regenerated_from';
    PERFORM set_config('backlot.refreshing', 'off', true);
END $$;

-- A status change wakes job dispatchers (a job may wait for this approval).
CREATE FUNCTION backlot_notify_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('backlot_jobs', NEW.id::text);
    RETURN NULL;
END $$;
CREATE TRIGGER version_status_notify AFTER UPDATE OF status ON versions
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION backlot_notify_status();
"""

DROP_SQL = """
DROP TRIGGER IF EXISTS version_status_notify ON versions;
DROP FUNCTION IF EXISTS backlot_notify_status();
"""
DROP_HELPERS_SQL = """
DROP FUNCTION IF EXISTS backlot_input_flag(bigint, bigint);
DROP FUNCTION IF EXISTS backlot_refresh_flags(integer, bigint);
DROP FUNCTION IF EXISTS backlot_pointer_version(integer);
DROP FUNCTION IF EXISTS backlot_derives_from(bigint, bigint);
"""


def _previous_functions() -> str:
    """0001's definitions of the three functions this revision replaces (for downgrade)."""
    spec = importlib.util.spec_from_file_location("backlot_0001", Path(__file__).with_name("0001_initial_tracker_schema.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    first = module.TRIGGERS_SQL
    blocks = []
    for name in ("backlot_refresh_asset", "backlot_input_after_insert", "backlot_rebuild_lineage_cache"):
        match = re.search(rf"CREATE FUNCTION {name}\(.*?END \$\$;", first, re.S)
        blocks.append(match.group(0).replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
    return "\n".join(blocks)


def upgrade() -> None:
    op.execute("ALTER TYPE job_kind ADD VALUE IF NOT EXISTS 'retrain_adapter'")
    op.add_column('projects', sa.Column('adapter_approval', sa.String(length=16), server_default='review',
                                        nullable=False))
    op.create_check_constraint(op.f('ck_projects_adapter_approval_valid'), 'projects',
                               "adapter_approval IN ('review', 'auto')")
    op.create_table(
        'job_dependencies',
        sa.Column('job_id', sa.BigInteger(), nullable=False),
        sa.Column('depends_on_id', sa.BigInteger(), nullable=False),
        sa.Column('approval', sa.Boolean(), server_default=sa.text('false'), nullable=False),
        sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_job_dependencies_job_id_jobs'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['depends_on_id'], ['jobs.id'], name=op.f('fk_job_dependencies_depends_on_id_jobs'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('job_id', 'depends_on_id', name=op.f('pk_job_dependencies')),
    )
    op.create_index('ix_job_dependencies_depends_on_id', 'job_dependencies', ['depends_on_id'])
    op.add_column('jobs', sa.Column('started_at', sa.DateTime(timezone=True), nullable=True))
    op.execute(FUNCTIONS_SQL)
    op.execute("SELECT backlot_rebuild_lineage_cache()")


def downgrade() -> None:
    op.execute(DROP_SQL)
    op.execute(_previous_functions())
    op.execute(DROP_HELPERS_SQL)
    op.execute("SELECT backlot_rebuild_lineage_cache()")
    op.drop_column('jobs', 'started_at')
    op.drop_index('ix_job_dependencies_depends_on_id', table_name='job_dependencies')
    op.drop_table('job_dependencies')
    op.drop_constraint(op.f('ck_projects_adapter_approval_valid'), 'projects', type_='check')
    op.drop_column('projects', 'adapter_approval')
    # PostgreSQL cannot drop an enum value: 'retrain_adapter' stays in job_kind, unused.
