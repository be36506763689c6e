"""Signing identities: a project's signer (certificate chain + private key) and the local CA
`backlot provenance init` makes for a studio that has none.

A signer is a folder: `chain.pem` (the signing certificate first, then its issuers),
`signer.key` (PKCS#8 PEM, mode 0600) and, for reading, `trust.pem` (the anchor a reader may
trust; for an init-made signer, the local CA). The database records which folder a project
uses and the certificate's fingerprint, never the key; nothing here prints or logs it.

C2PA (and c2pa-rs, which validates) want a signing certificate that is not a CA, has
digitalSignature key usage, an extended key usage other than anyExtendedKeyUsage
(emailProtection here, which c2pa-rs accepts), subject and authority key identifiers, and an
ES256/Ed25519 key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from backlot.config import load_settings
from backlot.db.provenance import ProjectSigner, ProvenancePolicy
from backlot.errors import ConflictError, InvalidInputError
from backlot.tracker.projects import find_project

CHAIN, KEY, TRUST, CA_KEY = "chain.pem", "signer.key", "trust.pem", "ca.key"
ALGORITHMS = ("es256", "ed25519")


@dataclass(frozen=True)
class SignerInfo:
    """What is known of a signer without its key: safe to print and store."""

    folder: Path
    algorithm: str
    certificate_sha256: str
    subject: str
    issuer: str
    not_after: dt.datetime


@dataclass(frozen=True)
class LoadedSigner:
    """A signer ready to sign: its description, the c2pa Signer, and the trust anchor PEM."""

    info: SignerInfo
    signer: object  # c2pa.Signer (imported lazily)
    trust_pem: str | None


def init_signer(folder: Path, *, organisation: str, algorithm: str = "es256", days: int = 825,
                force: bool = False) -> SignerInfo:
    """A local CA and a signer certificate it issues, written to `folder` (keys mode 0600).
    Valid C2PA credentials, untrusted until the studio adds `trust.pem` to its readers' anchors."""
    if algorithm not in ALGORITHMS:
        raise InvalidInputError(f"--algorithm {algorithm!r}: use one of {', '.join(ALGORITHMS)}")
    if not organisation.strip():
        raise InvalidInputError("--organisation must not be empty: it names who signs")
    if (folder / KEY).exists() and not force:
        raise ConflictError(f"{folder} already holds a signer; use it (`backlot provenance use`) or pass --force")
    ca_key, key = _new_key(algorithm), _new_key(algorithm)
    now = dt.datetime.now(dt.timezone.utc)
    ca = _certificate(_name(f"{organisation} Backlot local CA", organisation), ca_key, ca_key, None, now, days + 365,
                      ca=True)
    cert = _certificate(_name(f"{organisation} Backlot signer", organisation), key, ca_key, ca, now, days, ca=False)
    folder.mkdir(parents=True, exist_ok=True)
    _write_private(folder / CA_KEY, _key_pem(ca_key))
    _write_private(folder / KEY, _key_pem(key))
    _write_public(folder / CHAIN, _cert_pem(cert) + _cert_pem(ca))
    _write_public(folder / TRUST, _cert_pem(ca))
    return describe_signer(folder)


def describe_signer(folder: Path) -> SignerInfo:
    """Read a signer folder's chain and check its key (present, 0600, matching); a clear error otherwise."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    chain_path, key_path = folder / CHAIN, folder / KEY
    for path, what in ((chain_path, "certificate chain"), (key_path, "private key")):
        if not path.is_file():
            raise InvalidInputError(f"signer {folder}: its {what} {path.name} is missing; restore it, or make a "
                                    "signer with `backlot provenance init PROJECT`")
    if os.stat(key_path).st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InvalidInputError(f"signer key {key_path} is readable by others: `chmod 600 {key_path}`")
    try:
        chain = x509.load_pem_x509_certificates(chain_path.read_bytes())
    except ValueError as exc:
        raise InvalidInputError(f"signer {folder}: {CHAIN} is not a PEM certificate chain ({exc})") from None
    cert = chain[0]
    key = _load_key(key_path)
    if key.public_key().public_bytes(*_spki()) != cert.public_key().public_bytes(*_spki()):
        raise InvalidInputError(f"signer {folder}: {KEY} does not belong to the first certificate in {CHAIN}")
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1":
        algorithm = "es256"
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        algorithm = "ed25519"
    else:
        raise InvalidInputError(f"signer {folder}: the key must be EC P-256 (ES256) or Ed25519")
    now = dt.datetime.now(dt.timezone.utc)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise InvalidInputError(f"signer {folder}: the certificate is valid {cert.not_valid_before_utc:%Y-%m-%d} to "
                                f"{cert.not_valid_after_utc:%Y-%m-%d}, not now; renew it")
    fingerprint = hashlib.sha256(cert.public_bytes(_der())).hexdigest()
    return SignerInfo(folder, algorithm, fingerprint, cert.subject.rfc4514_string(), cert.issuer.rfc4514_string(),
                      cert.not_valid_after_utc)


def load_signer(folder: Path) -> LoadedSigner:
    """A c2pa Signer for the folder (the key is read into memory only for this)."""
    import c2pa

    info = describe_signer(folder)
    trust = folder / TRUST
    try:
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(info.algorithm, (folder / CHAIN).read_bytes(),
                                                           (folder / KEY).read_bytes(), None))
    except c2pa.C2paError as exc:
        raise InvalidInputError(f"signer {folder}: C2PA refuses it ({exc})") from None
    return LoadedSigner(info, signer, trust.read_text() if trust.is_file() else None)


def use_signer(session: Session, project: str, folder: Path, actor: str | None = None) -> SignerInfo:
    """Make `folder` the project's signer (checked first)."""
    info = describe_signer(folder.resolve())
    code = find_project(session, project)
    row = session.get(ProjectSigner, code.id) or ProjectSigner(project_id=code.id)
    row.folder, row.algorithm, row.certificate_sha256 = str(info.folder), info.algorithm, info.certificate_sha256
    row.subject, row.created_by = info.subject, actor or load_settings().user
    session.add(row)
    session.flush()
    return info


def project_signer_folder(session: Session, project: str) -> Path | None:
    """The folder of the project's signer, or None when it has none."""
    project_id = find_project(session, project).id
    folder = session.scalar(select(ProjectSigner.folder).where(ProjectSigner.project_id == project_id))
    return Path(folder) if folder else None


def signer_required(session: Session, project: str) -> bool:
    """Whether every render of the project must be signed: its policy (`backlot provenance
    policy`), or studio-wide BACKLOT_REQUIRE_SIGNER=1 / `require_signer = true` under
    [provenance] in BACKLOT_HOME/backlot.toml."""
    env = os.environ.get("BACKLOT_REQUIRE_SIGNER")
    if env is not None and env.strip():
        return env.strip().lower() in ("1", "true", "yes")
    policy = session.get(ProvenancePolicy, find_project(session, project).id)
    if policy is not None and policy.require_signer:
        return True
    path = load_settings().home / "backlot.toml"
    try:
        return bool(tomllib.loads(path.read_text()).get("provenance", {}).get("require_signer", False))
    except (OSError, tomllib.TOMLDecodeError):
        return False


def set_policy(session: Session, project: str, *, require_signer: bool | None = None,
               require_clearance: bool | None = None, actor: str | None = None) -> ProvenancePolicy:
    project_id = find_project(session, project).id
    policy = session.get(ProvenancePolicy, project_id) or ProvenancePolicy(project_id=project_id, require_signer=False,
                                                                           require_clearance=False)
    if require_signer is not None:
        policy.require_signer = require_signer
    if require_clearance is not None:
        policy.require_clearance = require_clearance
    policy.updated_by = actor or load_settings().user
    session.add(policy)
    session.flush()
    return policy


def check_project_signer(session: Session, project: str) -> LoadedSigner | None:
    """The project's signer, loaded; None when it has none and none is required. Called before
    any GPU work, so a missing or broken signer stops a render before it costs anything."""
    folder = project_signer_folder(session, project)
    if folder is None:
        if signer_required(session, project):
            raise InvalidInputError(f"project {project!r} has no signer and signing is required: make one with "
                                    f"`backlot provenance init {project}` or use the studio's with "
                                    f"`backlot provenance use {project} FOLDER`")
        return None
    return load_signer(folder)


# -- PKI ------------------------------------------------------------------------------------


def _new_key(algorithm: str):
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    return ec.generate_private_key(ec.SECP256R1()) if algorithm == "es256" else ed25519.Ed25519PrivateKey.generate()


def _name(common: str, organisation: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation)])


def _certificate(subject, key, issuer_key, issuer, now: dt.datetime, days: int, *, ca: bool):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.x509.oid import ExtendedKeyUsageOID

    usage = dict(digital_signature=not ca, content_commitment=False, key_encipherment=False, data_encipherment=False,
                 key_agreement=False, key_cert_sign=ca, crl_sign=ca, encipher_only=False, decipher_only=False)
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(issuer.subject if issuer is not None else subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
               .add_extension(x509.KeyUsage(**usage), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if not ca:
        builder = (builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                                  critical=False))
    digest = None if isinstance(issuer_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(issuer_key, digest)


def _load_key(path: Path):
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        return load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError):
        # Never echo the exception: it may quote the key's bytes.
        raise InvalidInputError(f"signer key {path} is not an unencrypted PEM private key") from None


def _key_pem(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_pem(cert) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def _spki():
    from cryptography.hazmat.primitives import serialization

    return serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo


def _der():
    from cryptography.hazmat.primitives import serialization

    return serialization.Encoding.DER


def _write_private(path: Path, data: bytes) -> None:
    """Created 0600 from the start (no window in which the key is readable by others)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _write_public(path: Path, data: bytes) -> None:
    path.write_bytes(data)
