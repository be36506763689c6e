"""Content Credentials on every generated file: read back with c2pa.Reader, lineage equal to the
database, verify unchanged, tampering reported, a missing signer stops a render before GPU work."""

from __future__ import annotations

import io
import os
import stat
import struct

import c2pa
import pytest
from sqlalchemy import select, text

import backlot
from backlot import generation as gen
from backlot import provenance
from backlot.db.provenance import ProjectSigner, SignedFile
from backlot.errors import InvalidInputError
from backlot.generation.loading import _CACHE, clear_cache
from backlot.provenance.credentials import LINEAGE_LABEL, TRAINED_ALGORITHMIC_MEDIA, mime_type
from backlot.storage import Store
from backlot.config import load_settings

TRAIN = gen.TrainSettings(steps=4, lr=1e-3, seed=0)


def render(s, shot, adapters=(), **kwargs):
    settings = gen.RenderSettings(prompt="mara walks", steps=4, seed=kwargs.pop("seed", 0))
    return gen.render_shot(s, "film", shot, settings, base_model="film/models/tiny@approved",
                           adapters=[gen.AdapterUse(ref, w) for ref, w in adapters], **kwargs)


def expected_lineage(s, version) -> dict:
    """What the lineage assertion must say, read independently from the tracker's input edges."""
    inputs = {}
    for edge in backlot.get_inputs(s, version.id, roles=["base_model", "adapter", "continuity", "regenerated_from"]):
        inputs.setdefault(edge.role, []).append(backlot.get_version(s, edge.input_id))

    def brief(v):
        return {"ref": v.ref, "content_hash": v.content_hash}

    adapters = []
    for a in inputs.get("adapter", []):
        art = [brief(backlot.get_version(s, e.input_id)) for e in backlot.get_inputs(s, a.id, roles=["training_data"])]
        weight = next(x["weight"] for x in version.recipe["adapters"] if x["ref"] == a.ref)
        adapters.append({**brief(a), "weight": weight, "training_data": art})
    return {"ref": version.ref, "content_hash": version.content_hash, "recipe_sha256": version.recipe_sha256,
            "base_model": brief(inputs["base_model"][0]), "adapters": adapters,
            "continuity": ({**brief(inputs["continuity"][0]), "frame": version.recipe["continuity_frame"]}
                           if "continuity" in inputs else None),
            "regenerated_from": brief(inputs["regenerated_from"][0]) if "regenerated_from" in inputs else None}


def read_signed(s, version) -> dict[str, tuple[str, dict, list]]:
    """Every signed copy of a version read with c2pa.Reader: path -> (state, lineage, actions)."""
    store = Store(load_settings().store_url)
    rows = s.scalars(select(SignedFile).where(SignedFile.version_id == version.id)).all()
    found = {}
    for row in rows:
        with store.open_object(row.sha256) as f, c2pa.Reader(mime_type(row.path), io.BytesIO(f.read())) as reader:
            manifest = reader.get_active_manifest()
            labels = {a["label"]: a["data"] for a in manifest["assertions"]}
            found[row.path] = (reader.get_validation_state(), labels[LINEAGE_LABEL],
                               labels["c2pa.actions.v2"]["actions"])
    return found


def check_outputs(s, version):
    files = read_signed(s, version)
    assert set(files) == {f.path for f in version.files}  # frames, preview.mp4, thumbnail.png: every one
    assert any(p.endswith(".mp4") for p in files) and "thumbnail.png" in files
    want = expected_lineage(s, version)
    sha = {f.path: f.sha256 for f in version.files}
    for path, (state, lineage, actions) in files.items():
        assert state in ("Valid", "Trusted"), (path, state)
        assert {k: lineage[k] for k in want} == want, path
        assert lineage["file"] == {"path": path, "sha256": sha[path]}
        assert actions[0]["action"] == "c2pa.created"
        assert actions[0]["digitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
        assert lineage["generator"]["name"] == "Backlot"


def test_render_and_regeneration_outputs_carry_credentials_that_match_the_database(signed_production, run):
    with backlot.session() as s:
        provenance.set_rights(s, signed_production["art"], owner="Studio art dept", licence="work for hire",
                              consent="yes")
        adapter = gen.train_adapter(s, "film", "adapters/mara", [signed_production["art"]],
                                    base_model=signed_production["base"], settings=TRAIN)
        first = render(s, "sh010", adapters=[(adapter.ref, 0.8)])
        second = render(s, "sh020", adapters=[(adapter.ref, 0.8)])  # continues from sh010
        again = gen.rerender_version(s, first.ref)  # regenerated_from first
    with backlot.session() as s:
        for version in (first, second, again):
            check_outputs(s, version)
        assert read_signed(s, second)["thumbnail.png"][1]["continuity"]["ref"] == first.ref
        regen = read_signed(s, again)["preview.mp4"]
        assert regen[1]["regenerated_from"]["ref"] == first.ref
        assert regen[2][0]["description"] == f"regenerated from {first.ref}"
        # the stored version keeps its unsigned bytes: verify replays and compares them, unchanged
        assert gen.verify_version(s, second.ref).identical
    result = run("provenance", second.ref, "--json")
    assert '"ok": true' in result.stdout
    text_out = run("provenance", second.ref).stdout
    assert adapter.ref in text_out and signed_production["art"] in text_out and f"continues from {first.ref}" in text_out


def test_init_writes_private_keys_0600_and_never_stores_them(production, run, env):
    result = run("provenance", "init", "film", "--org", "Test Studio")
    folder = env / "signers" / "film"
    for name in ("signer.key", "ca.key"):
        assert stat.S_IMODE(os.stat(folder / name).st_mode) == 0o600
    assert "PRIVATE KEY" not in result.stdout + result.stderr
    with backlot.session() as s:
        row = s.scalar(select(ProjectSigner))
        dump = s.execute(text("SELECT row_to_json(p)::text FROM project_signers p")).scalar()
    assert row.folder == str(folder) and row.algorithm == "es256"
    assert "PRIVATE" not in dump and (folder / "signer.key").read_text()[:40] not in dump
    run("provenance", "init", "film", "--org", "Test Studio", code=2)  # a second init does not overwrite
    (folder / "signer.key").chmod(0o644)
    assert "chmod 600" in run("provenance", "use", "film", str(folder), code=2).stderr


def test_ed25519_signer_signs_and_reads_back(production, env):
    folder = env / "ed"
    with backlot.session() as s:
        provenance.init_signer(folder, organisation="Studio", algorithm="ed25519")
        provenance.use_signer(s, "film", folder)
        version = render(s, "sh010")
    with backlot.session() as s:
        check_outputs(s, version)


def idat_offset(data: bytes) -> int:
    i = 8
    while i < len(data):
        (length,) = struct.unpack(">I", data[i:i + 4])
        if data[i + 4:i + 8] == b"IDAT":
            return i + 8 + length // 2
        i += 12 + length
    raise AssertionError("no IDAT")


def test_a_flipped_byte_in_a_signed_frame_is_reported_as_tampered(signed_production, run, tmp_path):
    with backlot.session() as s:
        version = render(s, "sh010")
    delivered = tmp_path / "delivery"
    run("provenance", "export", version.ref, delivered)
    run("provenance", version.ref, "--files", delivered)  # as delivered: valid
    frame = sorted(delivered.glob("frames/*.png"))[1]
    data = bytearray(frame.read_bytes())
    data[idat_offset(bytes(data))] ^= 0x01
    frame.write_bytes(bytes(data))
    result = run("provenance", version.ref, "--files", delivered, "--json", code=1)
    import json

    report = json.loads(result.stdout)
    states = {f["path"]: f["state"] for f in report["files"]}
    name = f"frames/{frame.name}"
    assert states.pop(name) == "tampered" and set(states.values()) == {"trusted"}  # the project anchor
    bad = next(f for f in report["files"] if f["path"] == name)
    assert any("dataHash.mismatch" in p for p in bad["problems"])
    assert any("differs from the version's stored file" in p for p in bad["problems"])
    assert "tampered" in run("provenance", version.ref, "--files", delivered, code=1).stdout
    # the same flip in the store's signed copy is found without any delivered folder
    with backlot.session() as s:
        row = s.scalar(select(SignedFile).where(SignedFile.version_id == version.id, SignedFile.path == name))
    stored = Store(load_settings().store_url).object_path(row.sha256)
    os.chmod(stored, 0o644)
    blob = bytearray(open(stored, "rb").read())
    blob[idat_offset(bytes(blob))] ^= 0x01
    open(stored, "wb").write(bytes(blob))
    assert "tampered" in run("provenance", version.ref, code=1).stdout
    with backlot.session() as s:
        assert gen.verify_version(s, version.ref).identical  # the unsigned stored bytes are untouched


def test_a_missing_signer_stops_a_render_before_any_gpu_work(signed_production):
    (signed_production["signer"] / "signer.key").unlink()
    clear_cache()
    frames = []
    with backlot.session() as s:
        with pytest.raises(InvalidInputError, match="signer.key is missing"):
            render(s, "sh010", progress=frames.append)
        assert not any(a.kind == "shot_render" for a in backlot.list_assets(s, "film"))  # nothing published
    assert frames == [] and _CACHE == {}  # no frame rendered, no pipeline loaded


def test_a_project_that_requires_signing_and_has_no_signer_is_refused(production):
    clear_cache()
    with backlot.session() as s:
        provenance.set_policy(s, "film", require_signer=True)
    with backlot.session() as s:
        with pytest.raises(InvalidInputError, match="no signer and signing is required"):
            render(s, "sh010")
    assert _CACHE == {}


def test_an_unsigned_project_renders_as_before_and_reports_unsigned(production, run):
    with backlot.session() as s:
        version = render(s, "sh010")
    report = run("provenance", version.ref, "--json", code=1).stdout
    assert '"unsigned"' in report
