"""HTTP API tables: API tokens (hashed, per project and role), webhook subscribers,
deliveries and the delivery log; an index to find version files by content hash.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

ENUMS = ["access_role", "delivery_state"]


def upgrade() -> None:
    op.create_table(
        'api_tokens',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('project_id', sa.Integer(), nullable=False),
        sa.Column('role', sa.Enum('viewer', 'artist', 'supervisor', 'admin', name='access_role'), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('prefix', sa.String(length=16), nullable=False),
        sa.Column('created_by', sa.String(length=100), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint('length(name) > 0', name=op.f('ck_api_tokens_name_not_empty')),
        sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_api_tokens_project_id_projects'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash')),
    )
    op.create_index(op.f('ix_api_tokens_project_id'), 'api_tokens', ['project_id'], unique=False)

    op.create_table(
        'webhook_subscribers',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('project_id', sa.Integer(), nullable=False),
        sa.Column('url', sa.Text(), nullable=False),
        sa.Column('secret', sa.String(length=100), nullable=False),
        sa.Column('event_kinds', postgresql.ARRAY(sa.String(length=64)), server_default=sa.text("'{}'"),
                  nullable=False),
        sa.Column('active', sa.Boolean(), server_default=sa.text('true'), nullable=False),
        sa.Column('created_by', sa.String(length=100), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('watermark_event_id', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
        sa.CheckConstraint("url ~ '^https?://'", name=op.f('ck_webhook_subscribers_url_http')),
        sa.ForeignKeyConstraint(['project_id'], ['projects.id'],
                                name=op.f('fk_webhook_subscribers_project_id_projects'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_subscribers')),
    )
    op.create_index(op.f('ix_webhook_subscribers_project_id'), 'webhook_subscribers', ['project_id'], unique=False)

    op.create_table(
        'webhook_deliveries',
        sa.Column('id', sa.BigInteger(), nullable=False),
        sa.Column('subscriber_id', sa.Integer(), nullable=False),
        sa.Column('event_id', sa.BigInteger(), nullable=False),
        sa.Column('state', sa.Enum('pending', 'delivered', 'failed', name='delivery_state'),
                  server_default='pending', nullable=False),
        sa.Column('attempts', sa.Integer(), server_default=sa.text('0'), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('last_status', sa.Integer(), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint('attempts >= 0', name=op.f('ck_webhook_deliveries_attempts_non_negative')),
        sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_webhook_deliveries_event_id_events'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['subscriber_id'], ['webhook_subscribers.id'],
                                name=op.f('fk_webhook_deliveries_subscriber_id_webhook_subscribers'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_deliveries')),
        sa.UniqueConstraint('subscriber_id', 'event_id', name=op.f('uq_webhook_deliveries_subscriber_id_event_id')),
    )
    op.create_index('ix_webhook_deliveries_due', 'webhook_deliveries', ['next_attempt_at'], unique=False,
                    postgresql_where=sa.text("state = 'pending'"))
    op.create_index(op.f('ix_webhook_deliveries_event_id'), 'webhook_deliveries', ['event_id'], unique=False)

    op.create_table(
        'webhook_attempts',
        sa.Column('id', sa.BigInteger(), nullable=False),
        sa.Column('delivery_id', sa.BigInteger(), nullable=False),
        sa.Column('number', sa.Integer(), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('duration_ms', sa.Integer(), nullable=False),
        sa.Column('status_code', sa.Integer(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['delivery_id'], ['webhook_deliveries.id'],
                                name=op.f('fk_webhook_attempts_delivery_id_webhook_deliveries'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_attempts')),
    )
    op.create_index(op.f('ix_webhook_attempts_delivery_id'), 'webhook_attempts', ['delivery_id'], unique=False)
    # Media is served by content hash: find a project's file by sha256 without a scan.
    op.create_index('ix_version_files_sha256', 'version_files', ['sha256'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_version_files_sha256', table_name='version_files')
    op.drop_index(op.f('ix_webhook_attempts_delivery_id'), table_name='webhook_attempts')
    op.drop_table('webhook_attempts')
    op.drop_index(op.f('ix_webhook_deliveries_event_id'), table_name='webhook_deliveries')
    op.drop_index('ix_webhook_deliveries_due', table_name='webhook_deliveries',
                  postgresql_where=sa.text("state = 'pending'"))
    op.drop_table('webhook_deliveries')
    op.drop_index(op.f('ix_webhook_subscribers_project_id'), table_name='webhook_subscribers')
    op.drop_table('webhook_subscribers')
    op.drop_index(op.f('ix_api_tokens_project_id'), table_name='api_tokens')
    op.drop_table('api_tokens')
    for enum_name in ENUMS:
        op.execute(f"DROP TYPE IF EXISTS {enum_name}")
