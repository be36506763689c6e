"""Review-tracker links (Kitsu): mapped entities, uploads and pulled comments.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'review_links',
        sa.Column('project_id', sa.Integer(), sa.ForeignKey('projects.id', ondelete='CASCADE'), primary_key=True),
        sa.Column('system', sa.String(length=20), nullable=False),
        sa.Column('url', sa.String(length=500), nullable=False),
        sa.Column('production_id', sa.String(length=100), nullable=False),
        sa.Column('production_name', sa.String(length=200), nullable=False),
        sa.Column('task_type', sa.String(length=100), nullable=False),
        sa.Column('auth', sa.String(length=20), nullable=False),
        sa.Column('login', sa.String(length=200), nullable=True),
        sa.Column('events_url', sa.String(length=500), nullable=True),
        sa.Column('status_map', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"),
                  nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    )
    op.create_table(
        'review_entities',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('project_id', sa.Integer(), sa.ForeignKey('projects.id', ondelete='CASCADE'), nullable=False),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('external_id', sa.String(length=100), nullable=False),
        sa.UniqueConstraint('project_id', 'kind', 'name'),
    )
    op.create_table(
        'review_uploads',
        sa.Column('version_id', sa.BigInteger(), sa.ForeignKey('versions.id', ondelete='RESTRICT'), primary_key=True),
        sa.Column('project_id', sa.Integer(), sa.ForeignKey('projects.id', ondelete='CASCADE'), nullable=False),
        sa.Column('task_id', sa.String(length=100), nullable=False),
        sa.Column('comment_id', sa.String(length=100), nullable=False),
        sa.Column('preview_id', sa.String(length=100), nullable=True),
        sa.Column('revision', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('uploaded_at', sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index(op.f('ix_review_uploads_project_id'), 'review_uploads', ['project_id'])
    op.create_table(
        'review_comments',
        sa.Column('external_id', sa.String(length=100), primary_key=True),
        sa.Column('version_id', sa.BigInteger(), sa.ForeignKey('versions.id', ondelete='RESTRICT'), nullable=False),
        sa.Column('note_id', sa.BigInteger(), sa.ForeignKey('notes.id', ondelete='CASCADE'), nullable=False),
        sa.Column('status', sa.String(length=100), nullable=True),
    )
    op.create_index(op.f('ix_review_comments_version_id'), 'review_comments', ['version_id'])


def downgrade() -> None:
    op.drop_table('review_comments')
    op.drop_table('review_uploads')
    op.drop_table('review_entities')
    op.drop_table('review_links')
