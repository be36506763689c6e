"""Provenance and training clearance: project signers (a folder, never a key), the Content
Credentials of generated versions, what each project requires (lineage assertion + signed copies of their files), and the
rights of concept art (append-only; the newest row per version is current).

Revision ID: 0010_provenance_clearance
Revises: 0009_openassetio_notify
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0010_provenance_clearance'
down_revision = '0009_openassetio_notify'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'project_signers',
        sa.Column('project_id', sa.Integer(), sa.ForeignKey('projects.id', ondelete='CASCADE'), primary_key=True),
        sa.Column('folder', sa.Text(), nullable=False),
        sa.Column('algorithm', sa.String(length=10), nullable=False),
        sa.Column('certificate_sha256', sa.String(length=64), nullable=False),
        sa.Column('subject', sa.Text(), nullable=False),
        sa.Column('created_by', sa.String(length=100), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    )
    op.create_table(
        'provenance_policies',
        sa.Column('project_id', sa.Integer(), sa.ForeignKey('projects.id', ondelete='CASCADE'), primary_key=True),
        sa.Column('require_signer', sa.Boolean(), server_default=sa.text('false'), nullable=False),
        sa.Column('require_clearance', sa.Boolean(), server_default=sa.text('false'), nullable=False),
        sa.Column('updated_by', sa.String(length=100), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    )
    op.create_table(
        'version_credentials',
        sa.Column('version_id', sa.BigInteger(), sa.ForeignKey('versions.id', ondelete='RESTRICT'), primary_key=True),
        sa.Column('lineage', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('certificate_sha256', sa.String(length=64), nullable=False),
        sa.Column('subject', sa.Text(), nullable=False),
        sa.Column('signed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    )
    op.create_table(
        'signed_files',
        sa.Column('version_id', sa.BigInteger(),
                  sa.ForeignKey('version_credentials.version_id', ondelete='CASCADE'), primary_key=True),
        sa.Column('path', sa.Text(), primary_key=True),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('size', sa.BigInteger(), nullable=False),
        sa.Column('source_sha256', sa.String(length=64), nullable=False),
    )
    op.create_table(
        'art_rights',
        sa.Column('id', sa.BigInteger(), primary_key=True),
        sa.Column('version_id', sa.BigInteger(), sa.ForeignKey('versions.id', ondelete='RESTRICT'), nullable=False),
        sa.Column('owner', sa.Text(), nullable=False),
        sa.Column('licence', sa.Text(), nullable=False),
        sa.Column('consent', sa.String(length=10), nullable=False),
        sa.Column('note', sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column('set_by', sa.String(length=100), nullable=False),
        sa.Column('set_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.CheckConstraint("consent IN ('yes', 'no', 'unknown')", name=op.f('ck_art_rights_consent_valid')),
    )
    op.create_index('ix_art_rights_version', 'art_rights', ['version_id', 'id'])


def downgrade() -> None:
    op.drop_index('ix_art_rights_version', table_name='art_rights')
    op.drop_table('art_rights')
    op.drop_table('signed_files')
    op.drop_table('version_credentials')
    op.drop_table('provenance_policies')
    op.drop_table('project_signers')
