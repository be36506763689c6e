"""Content Credentials (C2PA manifests) on generated files, and reading them back.

The stored version keeps its unsigned bytes (its content hash, `backlot verify` and
reproduction are untouched); each generated file also gets a signed copy, stored by its own
sha256 beside them and recorded in `signed_files`. Everything that leaves Backlot (export,
the API's media, Kitsu) hands out the signed copy. Why: docs/provenance.md.

Each manifest holds a `c2pa.created` action with the IPTC digital source type
trainedAlgorithmicMedia and Backlot as software agent, and the `org.backlot.lineage`
assertion: the version, its recipe hash, base model and adapters with content hashes, the
concept art each adapter was trained on, the continuity source, what it was regenerated from,
and the file's own unsigned sha256.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from backlot.db.provenance import SignedFile, VersionCredential
from backlot.errors import InvalidInputError, NotFoundError
from backlot.provenance.signer import LoadedSigner, project_signer_folder, TRUST
from backlot.storage import Store
from backlot.tracker import VersionRecord, get_version

LINEAGE_LABEL = "org.backlot.lineage"
CREATED = "c2pa.created"
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
MIME_TYPES = {".png": "image/png", ".mp4": "video/mp4", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
              ".mov": "video/quicktime", ".webp": "image/webp"}
SIGNED_KINDS = ("shot_render",)
# Validation codes that say the bytes or the manifest changed after signing.
UNTRUSTED = "signingCredential.untrusted"


@dataclass(frozen=True)
class FileCheck:
    """What a reader finds in one file: state 'trusted', 'valid' (untrusted signer), 'tampered',
    'missing' (no manifest) or 'unsigned' (Backlot holds no signed copy)."""

    path: str
    state: str
    problems: list[str] = field(default_factory=list)
    lineage: dict[str, Any] | None = None
    signer: str | None = None
    actions: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class CredentialReport:
    ref: str
    lineage: dict[str, Any] | None  # what the database says the files carry
    signer: str | None
    files: list[FileCheck]

    @property
    def ok(self) -> bool:
        return bool(self.files) and all(f.state in ("trusted", "valid") for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        return {"ref": self.ref, "ok": self.ok, "signer": self.signer, "lineage": self.lineage,
                "files": [f.__dict__ for f in self.files]}


def backlot_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("backlot")
    except PackageNotFoundError:
        return "unknown"


def mime_type(path: str) -> str | None:
    return MIME_TYPES.get(os.path.splitext(path)[1].lower())


# -- lineage ---------------------------------------------------------------------------------


def build_lineage(session: Session, version: VersionRecord) -> dict[str, Any]:
    """The lineage assertion of a version, from the tracker's records of its inputs."""
    by_role: dict[str, list[VersionRecord]] = {}
    for edge in version.inputs:
        by_role.setdefault(edge.role, []).append(get_version(session, edge.version_id))
    recipe = version.recipe or {}
    weights = {a["ref"]: a.get("weight") for a in recipe.get("adapters", [])}

    def brief(v: VersionRecord) -> dict[str, Any]:
        return {"ref": v.ref, "content_hash": v.content_hash}

    def adapter(a: VersionRecord) -> dict[str, Any]:
        art = [brief(get_version(session, i.version_id)) for i in a.inputs if i.role == "training_data"]
        return {**brief(a), "weight": weights.get(a.ref), "training_data": art}

    one = lambda role: brief(by_role[role][0]) if by_role.get(role) else None  # noqa: E731
    continuity = one("continuity")
    if continuity and recipe.get("continuity_frame"):
        continuity["frame"] = recipe["continuity_frame"]
    return {
        "generator": {"name": "Backlot", "version": backlot_version()},
        "ref": version.ref, "kind": version.kind, "content_hash": version.content_hash,
        "recipe_sha256": version.recipe_sha256,
        "base_model": one("base_model"),
        "adapters": [adapter(a) for a in by_role.get("adapter", [])],
        "continuity": continuity,
        "regenerated_from": one("regenerated_from"),
    }


def manifest_for(lineage: dict[str, Any], path: str, sha256: str, mime: str) -> dict[str, Any]:
    """The C2PA manifest definition of one file."""
    action: dict[str, Any] = {"action": CREATED, "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                              "softwareAgent": {"name": "Backlot", "version": lineage["generator"]["version"]}}
    if lineage.get("regenerated_from"):
        action["description"] = f"regenerated from {lineage['regenerated_from']['ref']}"
    return {
        "claim_generator_info": [lineage["generator"]],
        "title": f"{lineage['ref']}/{path}", "format": mime,
        "assertions": [
            {"label": "c2pa.actions.v2", "data": {"actions": [action]}},
            {"label": LINEAGE_LABEL, "data": {**lineage, "file": {"path": path, "sha256": sha256}}},
        ],
    }


# -- signing ---------------------------------------------------------------------------------


def _context(trust_pem: str | None = None):
    """c2pa settings: no claim thumbnail (it would add a re-encoded picture to every frame), and
    the project's own anchor trusted when reading."""
    import c2pa

    settings: dict[str, Any] = {"builder": {"thumbnail": {"enabled": False}}}
    if trust_pem:
        settings["trust"] = {"user_anchors": trust_pem}
    return c2pa.Context(c2pa.Settings.from_dict(settings))


def sign_stream(manifest: dict[str, Any], mime: str, source: BinaryIO, dest: BinaryIO, signer: LoadedSigner,
                context=None) -> None:
    import c2pa

    builder = c2pa.Builder(manifest, context or _context())
    try:
        builder.sign(signer.signer, mime, source, dest)
    except c2pa.C2paError as exc:
        raise InvalidInputError(f"{manifest['title']}: cannot be signed ({exc})") from None


def sign_version(session: Session, version: VersionRecord, signer: LoadedSigner,
                 store: Store) -> VersionCredential:
    """Signed copies of a generated version's files, stored and recorded (once: a version
    already signed keeps its credentials)."""
    existing = session.get(VersionCredential, version.id)
    if existing is not None:
        return existing
    lineage = build_lineage(session, version)
    context = _context()
    credential = VersionCredential(version_id=version.id, lineage=lineage,
                                   certificate_sha256=signer.info.certificate_sha256, subject=signer.info.subject)
    session.add(credential)
    session.flush()
    with tempfile.TemporaryDirectory(prefix="backlot-sign-") as tmp:
        for index, entry in enumerate(version.files):
            mime = mime_type(entry.path)
            if mime is None:
                continue
            signed = Path(tmp) / f"{index}{os.path.splitext(entry.path)[1]}"
            with store.open_object(entry.sha256) as source, open(signed, "w+b") as dest:
                sign_stream(manifest_for(lineage, entry.path, entry.sha256, mime), mime, source, dest, signer, context)
            digest, size = _hash(signed)
            store._put_object(signed, digest)
            session.add(SignedFile(version_id=version.id, path=entry.path, sha256=digest, size=size,
                                   source_sha256=entry.sha256))
    session.flush()
    return credential


def sign_outputs(session: Session, version: VersionRecord, signer: LoadedSigner | None,
                 store: Store | None = None) -> None:
    """Sign a freshly published render when its project has a signer (the render hook)."""
    if signer is None or version.kind not in SIGNED_KINDS:
        return
    from backlot.config import load_settings

    sign_version(session, version, signer, store or Store(load_settings().store_url))


def signed_copies(session: Session, version_id: int) -> dict[str, SignedFile]:
    rows = session.scalars(select(SignedFile).where(SignedFile.version_id == version_id))
    return {row.path: row for row in rows}


def drop_credentials(session: Session, version_id: int) -> None:
    """Forget a version's signed copies (to sign again with another signer)."""
    session.execute(delete(VersionCredential).where(VersionCredential.version_id == version_id))


def sign_file(path: Path, dest: Path, lineage: dict[str, Any], signer: LoadedSigner, name: str | None = None) -> Path:
    """A signed copy of a file made on the way out (e.g. the review copy Kitsu receives)."""
    mime = mime_type(path.name)
    if mime is None:
        raise InvalidInputError(f"{path.name}: Content Credentials cannot be embedded in this file type")
    with open(path, "rb") as source, open(dest, "w+b") as out:
        sign_stream(manifest_for(lineage, name or path.name, _hash(path)[0], mime), mime, source, out, signer)
    return dest


def _hash(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest(), path.stat().st_size


# -- reading ---------------------------------------------------------------------------------


def read_credentials(data: bytes, mime: str, path: str, trust_pem: str | None = None,
                     expected_sha256: str | None = None) -> FileCheck:
    """Read and validate a file's manifest; `expected_sha256` is the unsigned file it must bind."""
    import c2pa

    try:
        with c2pa.Reader(mime, io.BytesIO(data), None, _context(trust_pem)) as reader:
            state = reader.get_validation_state() or "Invalid"
            results = reader.get_validation_results() or {}
            manifest = reader.get_active_manifest() or {}
    except c2pa.C2paError as exc:
        if "ManifestNotFound" in type(exc).__name__ or "no JUMBF" in str(exc):
            return FileCheck(path, "missing", ["no Content Credentials in the file"])
        return FileCheck(path, "tampered", [f"the manifest cannot be read ({exc})"])
    failures = (results.get("activeManifest") or {}).get("failure") or []
    problems = [f"{f.get('code')}: {f.get('explanation', '')}" for f in failures if f.get("code") != UNTRUSTED]
    assertions = {a["label"]: a.get("data") for a in manifest.get("assertions", [])}
    lineage = assertions.get(LINEAGE_LABEL)
    if expected_sha256 and (lineage or {}).get("file", {}).get("sha256") != expected_sha256:
        problems.append("the manifest was made for other content than this version's file")
    unsigned = content_without_manifest(data, mime)
    if expected_sha256 and unsigned is not None and hashlib.sha256(unsigned).hexdigest() != expected_sha256:
        problems.append("the content without its manifest differs from the version's stored file")
    if problems or state == "Invalid":
        verdict = "tampered"
    else:
        verdict = "trusted" if state == "Trusted" else "valid"
    info = manifest.get("signature_info") or {}
    signer = info.get("common_name") or info.get("issuer")
    actions = (assertions.get("c2pa.actions.v2") or {}).get("actions", [])
    return FileCheck(path, verdict, problems, lineage, signer, actions)


def content_without_manifest(data: bytes, mime: str) -> bytes | None:
    """The bytes the hard binding covers, for PNG (the file minus its caBX chunk): equal to the
    unsigned file. None for formats whose manifest insertion moves other bytes (MP4 offsets);
    c2pa's BMFF hash covers those."""
    if mime != "image/png" or data[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    out, i = [data[:8]], 8
    while i + 8 <= len(data):
        (length,) = struct.unpack(">I", data[i:i + 4])
        if data[i + 4:i + 8] != b"caBX":
            out.append(data[i:i + 12 + length])
        i += 12 + length
    return b"".join(out)


def check_version(session: Session, ref: str, *, store: Store | None = None,
                  files: Path | None = None) -> CredentialReport:
    """Read and validate the Content Credentials of a version's files: the signed copies in the
    store, or the delivered copies under `files` (laid out as the version is)."""
    from backlot.config import load_settings

    version = get_version(session, ref)
    store = store or Store(load_settings().store_url)
    credential = session.get(VersionCredential, version.id)
    copies = signed_copies(session, version.id)
    trust = _trust_pem(session, version.project)
    checks = []
    for entry in version.files:
        mime = mime_type(entry.path)
        if mime is None:
            continue
        if files is not None:
            target = files / entry.path
            if not target.is_file():
                checks.append(FileCheck(entry.path, "missing", [f"{target} does not exist"]))
                continue
            data = target.read_bytes()
        elif entry.path in copies:
            with store.open_object(copies[entry.path].sha256) as f:
                data = f.read()
        else:
            checks.append(FileCheck(entry.path, "unsigned", ["Backlot holds no signed copy of this file"]))
            continue
        check = read_credentials(data, mime, entry.path, trust, entry.sha256)
        if check.lineage is not None and credential is not None:
            carried = {k: v for k, v in check.lineage.items() if k != "file"}
            if carried != credential.lineage:
                check = FileCheck(check.path, "tampered", check.problems + ["its lineage differs from the database's"],
                                  check.lineage, check.signer, check.actions)
        checks.append(check)
    return CredentialReport(version.ref, credential.lineage if credential else None,
                            credential.subject if credential else None, checks)


def export_signed(session: Session, ref: str, out: Path, *, store: Store | None = None,
                  signer: LoadedSigner | None = None) -> list[Path]:
    """Write a version's signed files under `out` (signing now when it has no signed copies yet
    and `signer` is given). Files without Content Credentials support are copied as they are."""
    from backlot.config import load_settings

    version = get_version(session, ref)
    store = store or Store(load_settings().store_url)
    copies = signed_copies(session, version.id)
    if not copies and version.kind in SIGNED_KINDS:
        if signer is None:
            raise NotFoundError(f"{version.ref} has no Content Credentials and its project has no signer: "
                                f"`backlot provenance init {version.project}` first")
        sign_version(session, version, signer, store)
        copies = signed_copies(session, version.id)
    written = []
    for entry in version.files:
        target = out / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        sha = copies[entry.path].sha256 if entry.path in copies else entry.sha256
        with store.open_object(sha) as src, open(target, "wb") as dst:
            dst.write(src.read())
        written.append(target)
    return written


def _trust_pem(session: Session, project: str) -> str | None:
    folder = project_signer_folder(session, project)
    anchor = folder / TRUST if folder else None
    return anchor.read_text() if anchor and anchor.is_file() else None


def sign_for_delivery(session: Session, version: VersionRecord, path: Path, dest: Path, name: str) -> Path:
    """A file derived from `version` on its way out (e.g. the review copy Kitsu receives), signed
    into `dest` when the project has a signer; `path` itself when it has none (and none is required)."""
    from backlot.provenance.signer import check_project_signer

    signer = check_project_signer(session, version.project)
    if signer is None:
        return path
    credential = session.get(VersionCredential, version.id)
    lineage = credential.lineage if credential is not None else build_lineage(session, version)
    return sign_file(path, dest, lineage, signer, name)
