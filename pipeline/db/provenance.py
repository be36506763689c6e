"""Provenance: which signer a project's outputs are signed with, the signed copies of
generated files (Content Credentials), and the rights of concept art (training clearance).

No key material is stored here: a signer row names the folder holding the certificate chain
and the private key, which stay on disk (mode 0600). Rights rows are append-only: the
current rights of a version are its newest row; the older rows are the history.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from backlot.db.models import Base

CONSENT_VALUES = ("yes", "no", "unknown")


class ProjectSigner(Base):
    """The signer a project's generated files are signed with: a folder, never the key itself."""

    __tablename__ = "project_signers"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    folder: Mapped[str] = mapped_column(Text)
    algorithm: Mapped[str] = mapped_column(String(10))
    certificate_sha256: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class ProvenancePolicy(Base):
    """What a project insists on: every render signed; training only on art cleared to train."""

    __tablename__ = "provenance_policies"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    require_signer: Mapped[bool] = mapped_column(server_default=text("false"))
    require_clearance: Mapped[bool] = mapped_column(server_default=text("false"))
    updated_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class VersionCredential(Base):
    """A version's Content Credentials: the lineage assertion its files carry, and who signed."""

    __tablename__ = "version_credentials"

    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id", ondelete="RESTRICT"), primary_key=True)
    lineage: Mapped[dict[str, Any]] = mapped_column(JSONB)
    certificate_sha256: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(Text)
    signed_at: Mapped[datetime] = mapped_column(server_default=func.now())


class SignedFile(Base):
    """The signed copy of one file of a version (stored by its own sha256 beside the unsigned bytes)."""

    __tablename__ = "signed_files"

    version_id: Mapped[int] = mapped_column(ForeignKey("version_credentials.version_id", ondelete="CASCADE"),
                                            primary_key=True)
    path: Mapped[str] = mapped_column(Text, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))  # of the signed bytes
    size: Mapped[int] = mapped_column(BigInteger)
    source_sha256: Mapped[str] = mapped_column(String(64))  # of the unsigned file the manifest binds


class ArtRights(Base):
    """Rights of a concept-art (or reference) version: who owns it, its licence, consent to train."""

    __tablename__ = "art_rights"
    __table_args__ = (
        CheckConstraint("consent IN ('yes', 'no', 'unknown')", name="consent_valid"),
        Index("ix_art_rights_version", "version_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id", ondelete="RESTRICT"))
    owner: Mapped[str] = mapped_column(Text)
    licence: Mapped[str] = mapped_column(Text)
    consent: Mapped[str] = mapped_column(String(10))
    note: Mapped[str] = mapped_column(Text, server_default=text("''"))
    set_by: Mapped[str] = mapped_column(String(100))
    set_at: Mapped[datetime] = mapped_column(server_default=func.now())
