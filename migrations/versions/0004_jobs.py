"""Jobs (the transactional outbox for Celery), version idempotency keys, and the event kinds
`job_finished` and `cut_imported`.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

# The version guard of 0001, now also protecting idempotency_key.
GUARD_SQL = r"""
CREATE OR REPLACE FUNCTION backlot_version_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'versions are immutable: version % cannot be deleted', OLD.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF (NEW.id, NEW.asset_id, NEW.project_id, NEW.number, NEW.content_hash, NEW.media_type,
        NEW.recipe_id, NEW.metadata, NEW.created_by, NEW.created_at, NEW.created_txid, NEW.idempotency_key)
       IS DISTINCT FROM
       (OLD.id, OLD.asset_id, OLD.project_id, OLD.number, OLD.content_hash, OLD.media_type,
        OLD.recipe_id, OLD.metadata, OLD.created_by, OLD.created_at, OLD.created_txid, OLD.idempotency_key) THEN
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
"""

OLD_GUARD_SQL = GUARD_SQL.replace(", NEW.idempotency_key)", ")").replace(", OLD.idempotency_key)", ")")


def upgrade() -> None:
    op.execute("ALTER TYPE event_kind ADD VALUE IF NOT EXISTS 'job_finished'")
    op.execute("ALTER TYPE event_kind ADD VALUE IF NOT EXISTS 'cut_imported'")
    op.add_column('versions', sa.Column('idempotency_key', sa.String(length=200), nullable=True))
    op.create_unique_constraint(op.f('uq_versions_idempotency_key'), 'versions', ['idempotency_key'])
    op.execute(GUARD_SQL)
    op.create_table(
        'jobs',
        sa.Column('id', sa.BigInteger(), nullable=False),
        sa.Column('project_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.Enum('train_adapter', 'render_shot', 'rerender', name='job_kind'), nullable=False),
        sa.Column('queue', sa.String(length=32), server_default='gpu', nullable=False),
        sa.Column('params', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('idempotency_key', sa.String(length=200), nullable=False),
        sa.Column('state', sa.Enum('queued', 'dispatched', 'running', 'done', 'failed', 'cancelled', name='job_state'),
                  server_default='queued', nullable=False),
        sa.Column('attempts', sa.Integer(), server_default=sa.text('0'), nullable=False),
        sa.Column('max_attempts', sa.Integer(), server_default=sa.text('3'), nullable=False),
        sa.Column('progress', sa.Float(), server_default=sa.text('0'), nullable=False),
        sa.Column('progress_note', sa.Text(), nullable=True),
        sa.Column('depends_on_id', sa.BigInteger(), nullable=True),
        sa.Column('batch', sa.String(length=64), nullable=True),
        sa.Column('result_version_id', sa.BigInteger(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('traceback', sa.Text(), nullable=True),
        sa.Column('worker', sa.String(length=200), nullable=True),
        sa.Column('created_by', sa.String(length=100), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint('attempts >= 0 AND max_attempts >= 1', name=op.f('ck_jobs_attempts_valid')),
        sa.CheckConstraint('progress >= 0 AND progress <= 1', name=op.f('ck_jobs_progress_range')),
        sa.ForeignKeyConstraint(['depends_on_id'], ['jobs.id'], name=op.f('fk_jobs_depends_on_id_jobs'),
                                ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_jobs_project_id_projects'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['result_version_id'], ['versions.id'],
                                name=op.f('fk_jobs_result_version_id_versions'), ondelete='RESTRICT'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs')),
        sa.UniqueConstraint('idempotency_key', name=op.f('uq_jobs_idempotency_key')),
    )
    op.create_index('ix_jobs_active', 'jobs', ['state', 'updated_at'], unique=False,
                    postgresql_where=sa.text("state IN ('queued', 'dispatched', 'running')"))
    op.create_index(op.f('ix_jobs_batch'), 'jobs', ['batch'], unique=False)
    op.create_index('ix_jobs_project_id', 'jobs', ['project_id', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_jobs_project_id', table_name='jobs')
    op.drop_index(op.f('ix_jobs_batch'), table_name='jobs')
    op.drop_index('ix_jobs_active', table_name='jobs', postgresql_where=sa.text("state IN ('queued', 'dispatched', 'running')"))
    op.drop_table('jobs')
    op.execute("DROP TYPE IF EXISTS job_kind")
    op.execute("DROP TYPE IF EXISTS job_state")
    op.execute(OLD_GUARD_SQL)
    op.drop_constraint(op.f('uq_versions_idempotency_key'), 'versions', type_='unique')
    op.drop_column('versions', 'idempotency_key')
    # PostgreSQL cannot drop an enum value; 'job_finished' and 'cut_imported' stay in event_kind, unused.
