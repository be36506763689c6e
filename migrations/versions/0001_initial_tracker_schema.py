"""Initial tracker schema: projects, shots, assets, immutable versions, lineage, notes, events.

The triggers at the end enforce what the ORM cannot: immutability, contiguous version
numbers, inputs attached only at creation, and the derived stale-query cache
(versions.superseded / versions.live / live_inputs).

Revision ID: 0001
Revises: 
Create Date: 2026-11-25
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


ENUMS = ["stale_policy", "asset_kind", "version_status", "input_role", "event_kind"]

TRIGGERS_SQL = r"""
-- Versions: numbered by the database (contiguous per asset, under the asset row lock),
-- project copied from the asset, derived flags reset.
CREATE FUNCTION backlot_version_before_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    next_number integer;
    asset_project integer;
BEGIN
    UPDATE assets SET latest_number = latest_number + 1 WHERE id = NEW.asset_id
        RETURNING latest_number, project_id INTO next_number, asset_project;
    IF next_number IS NULL THEN
        RAISE EXCEPTION 'asset % does not exist', NEW.asset_id USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF NEW.number IS NOT NULL AND NEW.number <> next_number THEN
        RAISE EXCEPTION 'version numbers are assigned by the database: asset % expects %, got %',
            NEW.asset_id, next_number, NEW.number USING ERRCODE = 'check_violation';
    END IF;
    NEW.number := next_number;
    NEW.project_id := asset_project;
    NEW.created_txid := txid_current();
    NEW.superseded := false;
    NEW.live := true;
    RETURN NEW;
END $$;

-- Only status may change on a version; the derived flags only inside backlot_refresh_asset.
CREATE FUNCTION backlot_version_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'versions are immutable: version % cannot be deleted', OLD.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF (NEW.id, NEW.asset_id, NEW.project_id, NEW.number, NEW.content_hash, NEW.media_type,
        NEW.recipe_id, NEW.metadata, NEW.created_by, NEW.created_at, NEW.created_txid)
       IS DISTINCT FROM
       (OLD.id, OLD.asset_id, OLD.project_id, OLD.number, OLD.content_hash, OLD.media_type,
        OLD.recipe_id, OLD.metadata, OLD.created_by, OLD.created_at, OLD.created_txid) THEN
        RAISE EXCEPTION 'versions are immutable: only the status of version % may change', OLD.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF (NEW.superseded, NEW.live) IS DISTINCT FROM (OLD.superseded, OLD.live)
       AND coalesce(current_setting('backlot.refreshing', true), '') <> 'on' THEN
        RAISE EXCEPTION 'versions.superseded and versions.live are derived; change statuses instead'
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;

-- Inputs and files belong to the transaction that created their version; never changed after.
CREATE FUNCTION backlot_attach_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        RAISE EXCEPTION '% rows are immutable', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM versions WHERE id = NEW.version_id AND created_txid = txid_current()) THEN
        RAISE EXCEPTION 'version % is immutable: % can only be added in the transaction that creates it',
            NEW.version_id, TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE FUNCTION backlot_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are immutable', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END $$;

-- The version an asset's older versions are superseded by, under the project's policy.
CREATE FUNCTION backlot_asset_pointer(aid integer, policy stale_policy) RETURNS integer
LANGUAGE sql STABLE AS $$
    SELECT max(number) FROM versions
    WHERE asset_id = aid AND CASE WHEN policy = 'approved' THEN status = 'approved' ELSE status <> 'rejected' END
$$;

-- Recompute an asset's approved number and its versions' derived flags, and mirror the
-- changes into live_inputs: the input edges of live versions (current, or not superseded),
-- each flagged when its input is superseded. Cost follows the versions of one asset and
-- the edges that touch the versions whose flags changed. regenerated_from edges, which
-- carry no staleness, are left out.
CREATE FUNCTION backlot_refresh_asset(aid integer) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    pol stale_policy;
    latest integer;
    approved integer;
    pointer integer;
    r record;
BEGIN
    SELECT p.stale_policy, a.latest_number INTO pol, latest
        FROM assets a JOIN projects p ON p.id = a.project_id WHERE a.id = aid FOR UPDATE OF a;
    approved := backlot_asset_pointer(aid, 'approved');
    pointer := CASE WHEN pol = 'approved' THEN approved ELSE backlot_asset_pointer(aid, pol) END;
    UPDATE assets SET approved_number = approved WHERE id = aid AND approved_number IS DISTINCT FROM approved;
    PERFORM set_config('backlot.refreshing', 'on', true);
    FOR r IN
        WITH desired AS (
            SELECT id, project_id, superseded AS old_s, live AS old_l,
                   coalesce(number < pointer, false) AS s,
                   NOT coalesce(number < pointer, false) OR number = latest OR coalesce(number = approved, false) AS l
            FROM versions WHERE asset_id = aid
        )
        UPDATE versions v SET superseded = d.s, live = d.l FROM desired d
        WHERE v.id = d.id AND (d.s <> d.old_s OR d.l <> d.old_l)
        RETURNING v.id, v.project_id, d.old_s, d.s, d.old_l, d.l
    LOOP
        IF r.s <> r.old_s THEN
            UPDATE live_inputs SET input_superseded = r.s WHERE input_id = r.id;
        END IF;
        IF r.l AND NOT r.old_l THEN
            INSERT INTO live_inputs (version_id, input_id, role, project_id, input_superseded)
            SELECT vi.version_id, vi.input_id, vi.role, r.project_id, iv.superseded
            FROM version_inputs vi JOIN versions iv ON iv.id = vi.input_id
            WHERE vi.version_id = r.id AND vi.role <> 'regenerated_from';
        ELSIF r.old_l AND NOT r.l THEN
            DELETE FROM live_inputs WHERE version_id = r.id;
        END IF;
    END LOOP;
    PERFORM set_config('backlot.refreshing', 'off', true);
END $$;

CREATE FUNCTION backlot_version_after_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM backlot_refresh_asset(NEW.asset_id);
    RETURN NULL;
END $$;

-- A new input edge of a live version enters live_inputs. FOR SHARE on the input waits for
-- a concurrent refresh of the input's asset, so the flag read here is the committed one.
-- regenerated_from edges carry no staleness and stay out.
CREATE FUNCTION backlot_input_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    input_superseded boolean;
BEGIN
    IF NEW.role = 'regenerated_from' THEN
        RETURN NULL;
    END IF;
    SELECT superseded INTO input_superseded FROM versions WHERE id = NEW.input_id FOR SHARE;
    INSERT INTO live_inputs (version_id, input_id, role, project_id, input_superseded)
    SELECT NEW.version_id, NEW.input_id, NEW.role, v.project_id, input_superseded
    FROM versions v WHERE v.id = NEW.version_id AND v.live;
    RETURN NULL;
END $$;

CREATE FUNCTION backlot_project_policy_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM backlot_refresh_asset(id) FROM assets WHERE project_id = NEW.id;
    RETURN NULL;
END $$;

-- Set-based rebuild of every derived flag and of live_inputs (after bulk loads with
-- triggers disabled, or to repair). Equivalent to refreshing every asset.
CREATE FUNCTION backlot_rebuild_lineage_cache() RETURNS void LANGUAGE plpgsql AS $$
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
        SELECT a.id, a.latest_number AS latest, a.approved_number AS approved,
               CASE WHEN p.stale_policy = 'approved' THEN a.approved_number
                    ELSE backlot_asset_pointer(a.id, p.stale_policy) END AS pointer
        FROM assets a JOIN projects p ON p.id = a.project_id
    )
    UPDATE versions v
    SET superseded = coalesce(v.number < ptr.pointer, false),
        live = NOT coalesce(v.number < ptr.pointer, false) OR v.number = ptr.latest OR coalesce(v.number = ptr.approved, false)
    FROM ptr WHERE ptr.id = v.asset_id
      AND (v.superseded <> coalesce(v.number < ptr.pointer, false)
           OR v.live <> (NOT coalesce(v.number < ptr.pointer, false) OR v.number = ptr.latest OR coalesce(v.number = ptr.approved, false)));
    DELETE FROM live_inputs;
    INSERT INTO live_inputs (version_id, input_id, role, project_id, input_superseded)
    SELECT vi.version_id, vi.input_id, vi.role, v.project_id, iv.superseded
    FROM version_inputs vi
    JOIN versions v ON v.id = vi.version_id AND v.live
    JOIN versions iv ON iv.id = vi.input_id
    WHERE vi.role <> 'regenerated_from';
    PERFORM set_config('backlot.refreshing', 'off', true);
END $$;

CREATE TRIGGER version_before_insert BEFORE INSERT ON versions
    FOR EACH ROW EXECUTE FUNCTION backlot_version_before_insert();
CREATE TRIGGER version_guard BEFORE UPDATE OR DELETE ON versions
    FOR EACH ROW EXECUTE FUNCTION backlot_version_guard();
CREATE TRIGGER version_after_insert AFTER INSERT ON versions
    FOR EACH ROW EXECUTE FUNCTION backlot_version_after_change();
CREATE TRIGGER version_after_status AFTER UPDATE OF status ON versions
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION backlot_version_after_change();
CREATE TRIGGER input_guard BEFORE INSERT OR UPDATE OR DELETE ON version_inputs
    FOR EACH ROW EXECUTE FUNCTION backlot_attach_guard();
CREATE TRIGGER input_after_insert AFTER INSERT ON version_inputs
    FOR EACH ROW EXECUTE FUNCTION backlot_input_after_insert();
CREATE TRIGGER file_guard BEFORE INSERT OR UPDATE OR DELETE ON version_files
    FOR EACH ROW EXECUTE FUNCTION backlot_attach_guard();
CREATE TRIGGER recipe_guard BEFORE UPDATE OR DELETE ON recipes
    FOR EACH ROW EXECUTE FUNCTION backlot_immutable();
CREATE TRIGGER note_guard BEFORE UPDATE OR DELETE ON notes
    FOR EACH ROW EXECUTE FUNCTION backlot_immutable();
CREATE TRIGGER event_guard BEFORE UPDATE ON events
    FOR EACH ROW EXECUTE FUNCTION backlot_immutable();
CREATE TRIGGER project_policy_changed AFTER UPDATE OF stale_policy ON projects
    FOR EACH ROW WHEN (OLD.stale_policy IS DISTINCT FROM NEW.stale_policy)
    EXECUTE FUNCTION backlot_project_policy_changed();
"""

DROP_TRIGGERS_SQL = r"""
DROP TRIGGER IF EXISTS project_policy_changed ON projects;
DROP TRIGGER IF EXISTS event_guard ON events;
DROP TRIGGER IF EXISTS note_guard ON notes;
DROP TRIGGER IF EXISTS recipe_guard ON recipes;
DROP TRIGGER IF EXISTS file_guard ON version_files;
DROP TRIGGER IF EXISTS input_after_insert ON version_inputs;
DROP TRIGGER IF EXISTS input_guard ON version_inputs;
DROP TRIGGER IF EXISTS version_after_status ON versions;
DROP TRIGGER IF EXISTS version_after_insert ON versions;
DROP TRIGGER IF EXISTS version_guard ON versions;
DROP TRIGGER IF EXISTS version_before_insert ON versions;
DROP FUNCTION IF EXISTS backlot_rebuild_lineage_cache();
DROP FUNCTION IF EXISTS backlot_project_policy_changed();
DROP FUNCTION IF EXISTS backlot_input_after_insert();
DROP FUNCTION IF EXISTS backlot_version_after_change();
DROP FUNCTION IF EXISTS backlot_refresh_asset(integer);
DROP FUNCTION IF EXISTS backlot_asset_pointer(integer, stale_policy);
DROP FUNCTION IF EXISTS backlot_immutable();
DROP FUNCTION IF EXISTS backlot_attach_guard();
DROP FUNCTION IF EXISTS backlot_version_guard();
DROP FUNCTION IF EXISTS backlot_version_before_insert();
"""

def upgrade() -> None:
    op.create_table('projects',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('fps_num', sa.Integer(), server_default=sa.text('24'), nullable=False),
    sa.Column('fps_den', sa.Integer(), server_default=sa.text('1'), nullable=False),
    sa.Column('width', sa.Integer(), server_default=sa.text('1920'), nullable=False),
    sa.Column('height', sa.Integer(), server_default=sa.text('1080'), nullable=False),
    sa.Column('stale_policy', sa.Enum('approved', 'latest', name='stale_policy'), server_default='approved', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("code ~ '^[A-Za-z0-9][A-Za-z0-9_-]*$'", name=op.f('ck_projects_code_format')),
    sa.CheckConstraint('fps_num > 0 AND fps_den > 0', name=op.f('ck_projects_fps_positive')),
    sa.CheckConstraint('width > 0 AND height > 0', name=op.f('ck_projects_resolution_positive')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_projects')),
    sa.UniqueConstraint('code', name=op.f('uq_projects_code'))
    )
    op.create_table('recipes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('body', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recipes')),
    sa.UniqueConstraint('sha256', name=op.f('uq_recipes_sha256'))
    )
    op.create_table('sequences',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("code ~ '^[A-Za-z0-9][A-Za-z0-9_-]*$'", name=op.f('ck_sequences_code_format')),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_sequences_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sequences')),
    sa.UniqueConstraint('project_id', 'code', name=op.f('uq_sequences_project_id_code'))
    )
    op.create_table('shots',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('sequence_id', sa.Integer(), nullable=True),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('cut_in', sa.Integer(), server_default=sa.text('1001'), nullable=False),
    sa.Column('cut_out', sa.Integer(), nullable=False),
    sa.Column('handles', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('editorial_order', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("code ~ '^[A-Za-z0-9][A-Za-z0-9_-]*$'", name=op.f('ck_shots_code_format')),
    sa.CheckConstraint('cut_out >= cut_in', name=op.f('ck_shots_cut_range_order')),
    sa.CheckConstraint('handles >= 0', name=op.f('ck_shots_handles_non_negative')),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_shots_project_id_projects'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['sequence_id'], ['sequences.id'], name=op.f('fk_shots_sequence_id_sequences'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shots')),
    sa.UniqueConstraint('project_id', 'code', name=op.f('uq_shots_project_id_code'))
    )
    op.create_index('ix_shots_project_order', 'shots', ['project_id', 'editorial_order'], unique=False)
    op.create_index(op.f('ix_shots_sequence_id'), 'shots', ['sequence_id'], unique=False)
    op.create_table('assets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.Enum('concept_art', 'adapter', 'base_model', 'shot_render', 'reference', name='asset_kind'), nullable=False),
    sa.Column('shot_id', sa.Integer(), nullable=True),
    sa.Column('latest_number', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('approved_number', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("name ~ '^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$'", name=op.f('ck_assets_name_format')),
    sa.CheckConstraint('latest_number >= 0', name=op.f('ck_assets_latest_number_non_negative')),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_assets_project_id_projects'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['shot_id'], ['shots.id'], name=op.f('fk_assets_shot_id_shots'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assets')),
    sa.UniqueConstraint('project_id', 'name', name=op.f('uq_assets_project_id_name'))
    )
    op.create_index(op.f('ix_assets_shot_id'), 'assets', ['shot_id'], unique=False)
    op.create_table('versions',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('asset_id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('media_type', sa.String(length=100), nullable=False),
    sa.Column('status', sa.Enum('wip', 'review', 'approved', 'rejected', name='version_status'), nullable=False),
    sa.Column('recipe_id', sa.Integer(), nullable=True),
    sa.Column('metadata', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('created_by', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('superseded', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('live', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('created_txid', sa.BigInteger(), server_default=sa.text('txid_current()'), nullable=False),
    sa.CheckConstraint('number >= 1', name=op.f('ck_versions_number_positive')),
    sa.ForeignKeyConstraint(['asset_id'], ['assets.id'], name=op.f('fk_versions_asset_id_assets'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_versions_project_id_projects'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['recipe_id'], ['recipes.id'], name=op.f('fk_versions_recipe_id_recipes'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_versions')),
    sa.UniqueConstraint('asset_id', 'number', name=op.f('uq_versions_asset_id_number'))
    )
    op.create_index('ix_versions_project', 'versions', ['project_id'], unique=False)
    op.create_table('events',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('project_created', 'project_updated', 'sequence_created', 'shot_created', 'asset_created', 'version_created', 'status_changed', 'note_added', name='event_kind'), nullable=False),
    sa.Column('version_id', sa.BigInteger(), nullable=True),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_events_project_id_projects'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['version_id'], ['versions.id'], name=op.f('fk_events_version_id_versions'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events'))
    )
    op.create_index('ix_events_project_id', 'events', ['project_id', 'id'], unique=False)
    op.create_table('live_inputs',
    sa.Column('version_id', sa.BigInteger(), nullable=False),
    sa.Column('input_id', sa.BigInteger(), nullable=False),
    sa.Column('role', sa.Enum('training_data', 'base_model', 'adapter', 'concept_art', 'init_image', 'continuity', 'regenerated_from', name='input_role'), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('input_superseded', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['input_id'], ['versions.id'], name=op.f('fk_live_inputs_input_id_versions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['version_id'], ['versions.id'], name=op.f('fk_live_inputs_version_id_versions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('version_id', 'input_id', 'role', name=op.f('pk_live_inputs'))
    )
    op.create_index('ix_live_inputs_input', 'live_inputs', ['input_id'], unique=False)
    op.create_index('ix_live_inputs_superseded', 'live_inputs', ['project_id'], unique=False, postgresql_where=sa.text('input_superseded'))
    op.create_table('notes',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('version_id', sa.BigInteger(), nullable=False),
    sa.Column('author', sa.String(length=100), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('status_change', sa.Enum('wip', 'review', 'approved', 'rejected', name='version_status'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['version_id'], ['versions.id'], name=op.f('fk_notes_version_id_versions'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notes'))
    )
    op.create_index(op.f('ix_notes_version_id'), 'notes', ['version_id'], unique=False)
    op.create_table('version_files',
    sa.Column('version_id', sa.BigInteger(), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('size >= 0', name=op.f('ck_version_files_size_non_negative')),
    sa.ForeignKeyConstraint(['version_id'], ['versions.id'], name=op.f('fk_version_files_version_id_versions'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('version_id', 'path', name=op.f('pk_version_files'))
    )
    op.create_table('version_inputs',
    sa.Column('version_id', sa.BigInteger(), nullable=False),
    sa.Column('input_id', sa.BigInteger(), nullable=False),
    sa.Column('role', sa.Enum('training_data', 'base_model', 'adapter', 'concept_art', 'init_image', 'continuity', 'regenerated_from', name='input_role'), nullable=False),
    sa.CheckConstraint('input_id < version_id', name=op.f('ck_version_inputs_input_is_older')),
    sa.ForeignKeyConstraint(['input_id'], ['versions.id'], name=op.f('fk_version_inputs_input_id_versions'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['version_id'], ['versions.id'], name=op.f('fk_version_inputs_version_id_versions'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('version_id', 'input_id', 'role', name=op.f('pk_version_inputs'))
    )
    op.create_index('ix_version_inputs_input', 'version_inputs', ['input_id'], unique=False)
    op.execute(TRIGGERS_SQL)


def downgrade() -> None:
    op.execute(DROP_TRIGGERS_SQL)
    op.drop_index('ix_version_inputs_input', table_name='version_inputs')
    op.drop_table('version_inputs')
    op.drop_table('version_files')
    op.drop_index(op.f('ix_notes_version_id'), table_name='notes')
    op.drop_table('notes')
    op.drop_index('ix_live_inputs_superseded', table_name='live_inputs', postgresql_where=sa.text('input_superseded'))
    op.drop_index('ix_live_inputs_input', table_name='live_inputs')
    op.drop_table('live_inputs')
    op.drop_index('ix_events_project_id', table_name='events')
    op.drop_table('events')
    op.drop_index('ix_versions_project', table_name='versions')
    op.drop_table('versions')
    op.drop_index(op.f('ix_assets_shot_id'), table_name='assets')
    op.drop_table('assets')
    op.drop_index(op.f('ix_shots_sequence_id'), table_name='shots')
    op.drop_index('ix_shots_project_order', table_name='shots')
    op.drop_table('shots')
    op.drop_table('sequences')
    op.drop_table('recipes')
    op.drop_table('projects')
    for enum_name in ENUMS:
        op.execute(f"DROP TYPE IF EXISTS {enum_name}")
