"""Editorial: cut revisions, items, change lists, per-project cut settings, and the
cut-coverage cache behind the cut part of the stale query.

`cut_uncovered` holds the current (latest or approved) shot_render versions whose recorded
frame range (`metadata.frame_range`, inclusive) does not contain their shot's cut range
with handles. Triggers keep it in step when a version is published or changes status,
when a shot's cut range or handles change, and when an asset's shot or kind changes; each
refresh touches the versions of one asset.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


TRIGGERS_SQL = r"""
-- The frames a version says it covers: metadata.frame_range as [first, last] or "first-last",
-- inclusive. NULL when absent (coverage unknown, not judged); empty when malformed (covers nothing).
CREATE FUNCTION backlot_frame_range(meta jsonb) RETURNS int4range LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    fr jsonb := meta -> 'frame_range';
    parts text[];
    first_frame integer;
    last_frame integer;
BEGIN
    IF fr IS NULL OR jsonb_typeof(fr) = 'null' THEN
        RETURN NULL;
    END IF;
    IF jsonb_typeof(fr) = 'array' AND jsonb_array_length(fr) = 2 THEN
        first_frame := (fr ->> 0)::integer;
        last_frame := (fr ->> 1)::integer;
    ELSIF jsonb_typeof(fr) = 'string' THEN
        parts := regexp_match(fr #>> '{}', '^\s*(-?\d+)\s*-\s*(-?\d+)\s*$');
        IF parts IS NULL THEN
            RETURN 'empty'::int4range;
        END IF;
        first_frame := parts[1]::integer;
        last_frame := parts[2]::integer;
    ELSE
        RETURN 'empty'::int4range;
    END IF;
    IF first_frame IS NULL OR last_frame IS NULL OR last_frame < first_frame THEN
        RETURN 'empty'::int4range;
    END IF;
    RETURN int4range(first_frame, last_frame, '[]');
EXCEPTION WHEN others THEN
    RETURN 'empty'::int4range;
END $$;

-- Recompute the uncovered current versions of one shot_render asset, under its row lock
-- (the order publishing uses), so concurrent refreshes of one asset queue.
CREATE FUNCTION backlot_refresh_cut_coverage(aid integer) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM assets WHERE id = aid FOR UPDATE;
    DELETE FROM cut_uncovered WHERE asset_id = aid;
    INSERT INTO cut_uncovered (version_id, asset_id, shot_id, project_id, need_first, need_last, have_first, have_last)
    SELECT v.id, a.id, s.id, a.project_id, s.cut_in - s.handles, s.cut_out + s.handles,
           CASE WHEN isempty(c.have) THEN NULL ELSE lower(c.have) END,
           CASE WHEN isempty(c.have) THEN NULL ELSE upper(c.have) - 1 END
    FROM assets a
    JOIN shots s ON s.id = a.shot_id
    JOIN versions v ON v.asset_id = a.id
    CROSS JOIN LATERAL (SELECT backlot_frame_range(v.metadata) AS have) c
    WHERE a.id = aid AND a.kind = 'shot_render'
      AND (v.number = a.latest_number
           OR v.number = (SELECT max(number) FROM versions WHERE asset_id = aid AND status = 'approved'))
      AND c.have IS NOT NULL
      AND NOT (int4range(s.cut_in - s.handles, s.cut_out + s.handles, '[]') <@ c.have);
END $$;

CREATE FUNCTION backlot_version_cut_coverage() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM assets WHERE id = NEW.asset_id AND kind = 'shot_render' AND shot_id IS NOT NULL) THEN
        PERFORM backlot_refresh_cut_coverage(NEW.asset_id);
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION backlot_shot_cut_coverage() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM backlot_refresh_cut_coverage(a.id)
    FROM (SELECT id FROM assets WHERE shot_id = NEW.id AND kind = 'shot_render' ORDER BY id) a;
    RETURN NULL;
END $$;

CREATE FUNCTION backlot_asset_cut_coverage() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM backlot_refresh_cut_coverage(NEW.id);
    RETURN NULL;
END $$;

-- Repair / after bulk loads with triggers off: recompute the whole cache.
CREATE FUNCTION backlot_rebuild_cut_coverage() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM cut_uncovered;
    PERFORM backlot_refresh_cut_coverage(a.id)
    FROM (SELECT id FROM assets WHERE kind = 'shot_render' AND shot_id IS NOT NULL ORDER BY id) a;
END $$;

CREATE TRIGGER version_cut_coverage_insert AFTER INSERT ON versions
    FOR EACH ROW EXECUTE FUNCTION backlot_version_cut_coverage();
CREATE TRIGGER version_cut_coverage_status AFTER UPDATE OF status ON versions
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION backlot_version_cut_coverage();
CREATE TRIGGER shot_cut_coverage AFTER UPDATE OF cut_in, cut_out, handles ON shots
    FOR EACH ROW WHEN ((OLD.cut_in, OLD.cut_out, OLD.handles) IS DISTINCT FROM (NEW.cut_in, NEW.cut_out, NEW.handles))
    EXECUTE FUNCTION backlot_shot_cut_coverage();
CREATE TRIGGER asset_cut_coverage AFTER UPDATE OF shot_id, kind ON assets
    FOR EACH ROW WHEN ((OLD.shot_id, OLD.kind) IS DISTINCT FROM (NEW.shot_id, NEW.kind))
    EXECUTE FUNCTION backlot_asset_cut_coverage();
"""

DROP_TRIGGERS_SQL = r"""
DROP TRIGGER IF EXISTS asset_cut_coverage ON assets;
DROP TRIGGER IF EXISTS shot_cut_coverage ON shots;
DROP TRIGGER IF EXISTS version_cut_coverage_status ON versions;
DROP TRIGGER IF EXISTS version_cut_coverage_insert ON versions;
DROP FUNCTION IF EXISTS backlot_rebuild_cut_coverage();
DROP FUNCTION IF EXISTS backlot_asset_cut_coverage();
DROP FUNCTION IF EXISTS backlot_shot_cut_coverage();
DROP FUNCTION IF EXISTS backlot_version_cut_coverage();
DROP FUNCTION IF EXISTS backlot_refresh_cut_coverage(integer);
DROP FUNCTION IF EXISTS backlot_frame_range(jsonb);
"""


def upgrade() -> None:
    op.create_table('cut_settings',
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('rules', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('track_policy', sa.String(length=200), server_default=sa.text("'visible'"), nullable=False),
    sa.Column('first_frame', sa.Integer(), server_default=sa.text('1001'), nullable=False),
    sa.Column('handles', sa.Integer(), server_default=sa.text('8'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('handles >= 0', name=op.f('ck_cut_settings_handles_non_negative')),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_cut_settings_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('project_id', name=op.f('pk_cut_settings'))
    )
    op.create_table('cut_revisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('source_file', sa.Text(), nullable=False),
    sa.Column('file_sha256', sa.String(length=64), nullable=False),
    sa.Column('file_size', sa.BigInteger(), nullable=False),
    sa.Column('stored_hash', sa.String(length=64), nullable=False),
    sa.Column('adapter', sa.String(length=64), nullable=False),
    sa.Column('reader_options', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('import_key', sa.String(length=64), nullable=False),
    sa.Column('track_policy', sa.String(length=200), nullable=False),
    sa.Column('fps_num', sa.Integer(), nullable=False),
    sa.Column('fps_den', sa.Integer(), nullable=False),
    sa.Column('record_in', sa.Integer(), nullable=False),
    sa.Column('record_out_excl', sa.Integer(), nullable=False),
    sa.Column('clip_count', sa.Integer(), nullable=False),
    sa.Column('matched_count', sa.Integer(), nullable=False),
    sa.Column('previous_id', sa.Integer(), nullable=True),
    sa.Column('created_by', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('number >= 1', name=op.f('ck_cut_revisions_number_positive')),
    sa.CheckConstraint('fps_num > 0 AND fps_den > 0', name=op.f('ck_cut_revisions_fps_positive')),
    sa.CheckConstraint('record_out_excl > record_in', name=op.f('ck_cut_revisions_record_range_order')),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_cut_revisions_project_id_projects'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['previous_id'], ['cut_revisions.id'], name=op.f('fk_cut_revisions_previous_id_cut_revisions'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cut_revisions')),
    sa.UniqueConstraint('project_id', 'number', name=op.f('uq_cut_revisions_project_id_number'))
    )
    op.create_table('cut_items',
    sa.Column('revision_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('otio_path', sa.String(length=200), nullable=False),
    sa.Column('track', sa.Text(), nullable=False),
    sa.Column('track_index', sa.Integer(), nullable=False),
    sa.Column('clip_name', sa.Text(), nullable=False),
    sa.Column('reel', sa.Text(), nullable=True),
    sa.Column('media_url', sa.Text(), nullable=True),
    sa.Column('record_in', sa.Integer(), nullable=False),
    sa.Column('record_out_excl', sa.Integer(), nullable=False),
    sa.Column('source_rate_num', sa.Integer(), nullable=False),
    sa.Column('source_rate_den', sa.Integer(), nullable=False),
    sa.Column('clip_source_in', sa.Integer(), nullable=False),
    sa.Column('source_in', sa.Integer(), nullable=False),
    sa.Column('source_out_excl', sa.Integer(), nullable=False),
    sa.Column('speed_num', sa.Integer(), nullable=False),
    sa.Column('speed_den', sa.Integer(), nullable=False),
    sa.Column('freeze', sa.Boolean(), nullable=False),
    sa.Column('transition_in', sa.Integer(), nullable=False),
    sa.Column('transition_out', sa.Integer(), nullable=False),
    sa.Column('needed_in', sa.Integer(), nullable=False),
    sa.Column('needed_out_excl', sa.Integer(), nullable=False),
    sa.Column('shot_code', sa.String(length=64), nullable=True),
    sa.Column('match_rule', sa.String(length=100), nullable=True),
    sa.Column('match_value', sa.Text(), nullable=True),
    sa.Column('cut_in', sa.Integer(), nullable=True),
    sa.Column('cut_out_incl', sa.Integer(), nullable=True),
    sa.CheckConstraint('record_out_excl > record_in', name=op.f('ck_cut_items_record_range_order')),
    sa.CheckConstraint('source_out_excl > source_in', name=op.f('ck_cut_items_source_range_order')),
    sa.CheckConstraint('needed_out_excl > needed_in', name=op.f('ck_cut_items_needed_range_order')),
    sa.CheckConstraint('speed_den > 0 AND source_rate_num > 0 AND source_rate_den > 0', name=op.f('ck_cut_items_fractions_positive')),
    sa.ForeignKeyConstraint(['revision_id'], ['cut_revisions.id'], name=op.f('fk_cut_items_revision_id_cut_revisions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('revision_id', 'position', name=op.f('pk_cut_items'))
    )
    op.create_index('ix_cut_items_revision_shot', 'cut_items', ['revision_id', 'shot_code'], unique=False)
    op.create_table('cut_changes',
    sa.Column('revision_id', sa.Integer(), nullable=False),
    sa.Column('shot_code', sa.String(length=64), nullable=False),
    sa.Column('kinds', postgresql.ARRAY(sa.String(length=32)), nullable=False),
    sa.Column('old_cut_in', sa.Integer(), nullable=True),
    sa.Column('old_cut_out_incl', sa.Integer(), nullable=True),
    sa.Column('new_cut_in', sa.Integer(), nullable=True),
    sa.Column('new_cut_out_incl', sa.Integer(), nullable=True),
    sa.Column('old_position', sa.Integer(), nullable=True),
    sa.Column('new_position', sa.Integer(), nullable=True),
    sa.Column('needs_render', sa.Boolean(), nullable=True),
    sa.Column('detail', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.ForeignKeyConstraint(['revision_id'], ['cut_revisions.id'], name=op.f('fk_cut_changes_revision_id_cut_revisions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('revision_id', 'shot_code', name=op.f('pk_cut_changes'))
    )
    op.create_table('cut_uncovered',
    sa.Column('version_id', sa.BigInteger(), nullable=False),
    sa.Column('asset_id', sa.Integer(), nullable=False),
    sa.Column('shot_id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('need_first', sa.Integer(), nullable=False),
    sa.Column('need_last', sa.Integer(), nullable=False),
    sa.Column('have_first', sa.Integer(), nullable=True),
    sa.Column('have_last', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['version_id'], ['versions.id'], name=op.f('fk_cut_uncovered_version_id_versions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('version_id', name=op.f('pk_cut_uncovered'))
    )
    op.create_index('ix_cut_uncovered_asset', 'cut_uncovered', ['asset_id'], unique=False)
    op.create_index('ix_cut_uncovered_project', 'cut_uncovered', ['project_id'], unique=False)
    op.execute(TRIGGERS_SQL)
    # Versions published before this revision: fill the cache once.
    op.execute("SELECT backlot_rebuild_cut_coverage()")


def downgrade() -> None:
    op.execute(DROP_TRIGGERS_SQL)
    op.drop_index('ix_cut_uncovered_project', table_name='cut_uncovered')
    op.drop_index('ix_cut_uncovered_asset', table_name='cut_uncovered')
    op.drop_table('cut_uncovered')
    op.drop_table('cut_changes')
    op.drop_index('ix_cut_items_revision_shot', table_name='cut_items')
    op.drop_table('cut_items')
    op.drop_table('cut_revisions')
    op.drop_table('cut_settings')
