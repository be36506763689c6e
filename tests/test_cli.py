"""The `backlot` CLI end to end on a real database: JSON on stdout, errors exit 2 and write nothing."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from backlot.db import migrate
from backlot.services.cli.app import app


def rows(db_url, sql):
    engine = create_engine(db_url)
    with engine.connect() as conn:
        value = conn.execute(text(sql)).scalar()
    engine.dispose()
    return value


def test_a_production_through_the_cli(run, files, db_url, tmp_path):
    run("project", "create", "film", "--fps", "24000/1001", "--name", "The Film")
    assert json.loads(run("project", "list", "--json").stdout)[0]["fps"] == "24000/1001"
    run("shot", "create", "film", "sq010_sh0010", "--sequence", "sq010", "--frames", "48", "--handles", "8")
    shots = json.loads(run("shot", "list", "film", "--json").stdout)
    assert shots[0]["cut_out"] == 1048 and shots[0]["sequence"] == "sq010"

    art = json.loads(run("publish", "film", "characters/mara", files("mara.png"), "--kind", "concept_art",
                         "--json").stdout)
    assert art["ref"] == "film/characters/mara@1"
    run("approve", "film/characters/mara@1", "--note", "on model")
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({"steps": 100, "seed": 3}))
    adapter = json.loads(run("publish", "film", "adapters/mara", files("w.safetensors"), "--kind", "adapter",
                             "--input", "training_data=film/characters/mara@approved", "--recipe", recipe,
                             "--meta", "rank=8", "--json").stdout)
    assert adapter["inputs"][0]["ref"] == "film/characters/mara@1" and adapter["recipe"]["seed"] == 3
    assert adapter["metadata"] == {"rank": "8"}
    run("publish", "film", "shots/sq010_sh0010/main", files("f1.png"), files("f2.png"), "--kind", "shot_render",
        "--shot", "sq010_sh0010", "--input", "adapter=film/adapters/mara@1")

    versions = json.loads(run("versions", "film/characters/mara", "--json").stdout)
    assert [(v["number"], v["status"]) for v in versions] == [(1, "approved")]
    shown = json.loads(run("show", "film/characters/mara@1", "--json").stdout)
    assert shown["notes"][0]["body"] == "on model"

    up = json.loads(run("lineage", "film/shots/sq010_sh0010/main@1", "--up", "--json").stdout)
    assert {(e["input"], e["depth"]) for e in up} == {("film/adapters/mara@1", 1), ("film/characters/mara@1", 2)}
    down = json.loads(run("lineage", "film/characters/mara@1", "--down", "--direct", "--json").stdout)
    assert [e["version"] for e in down] == ["film/adapters/mara@1"]

    assert json.loads(run("stale", "film", "--json").stdout) == []
    run("publish", "film", "characters/mara", files("mara2.png"), "--status", "approved")
    stale = json.loads(run("stale", "film", "--json").stdout)
    assert {s["ref"] for s in stale} == {"film/adapters/mara@1", "film/shots/sq010_sh0010/main@1"}
    assert stale[0]["reason"]["superseded_by"] == "film/characters/mara@2"

    run("reject", "film/characters/mara@2", "--note", "wrong hair")
    assert json.loads(run("stale", "film", "--json").stdout) == []
    assert "film/characters/mara@2 is review" in run("set-status", "film/characters/mara@2", "review").stdout
    assert json.loads(run("assets", "film", "--json").stdout)[0]["name"] == "adapters/mara"


@pytest.mark.parametrize("args, message", [
    (["project", "create", "bad code"], "project code 'bad code' is invalid"),
    (["project", "create", "film", "--fps", "0"], "frame rate"),
    (["shot", "create", "nope", "sh1"], "no project 'nope'"),
    (["versions", "film/unknown"], "no asset 'unknown'"),
    (["versions", "noslash"], "malformed"),
    (["approve", "film/art@x"], "invalid version 'x'"),
    (["approve", "film/art@9"], "no version 9"),
    (["set-status", "film/art@1", "done"], "status 'done' is invalid"),
    (["reject", "film/art@1", "--note", " "], "needs a --note"),
    (["publish", "film", "art", "/no/such/file.png"], "no such file"),
    (["publish", "film", "new", "{file}", "--kind", "thing"], "asset kind 'thing' is invalid"),
    (["publish", "film", "new", "{file}", "--kind", "reference", "--input", "nonsense"], "expected ROLE=REF"),
    (["publish", "film", "new", "{file}", "--kind", "reference", "--input", "training_data=film/art@4"],
     "no version 4"),
    (["publish", "film", "new", "{file}", "--kind", "reference", "--recipe", "{file}"], "not valid JSON"),
    (["publish", "film", "art", "{file}", "--kind", "adapter"], "is a concept_art"),
    (["lineage", "film/art@1", "--up", "--down"], "not both"),
    (["stale", "nope"], "no project 'nope'"),
    (["project", "create", "film"], "already exists"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(run, files, db_url, args, message):
    run("project", "create", "film")
    run("publish", "film", "art", files("a.png"), "--kind", "concept_art")
    before = rows(db_url, "SELECT (SELECT count(*) FROM versions) + (SELECT count(*) FROM events) "
                          "+ (SELECT count(*) FROM projects) + (SELECT count(*) FROM assets)")
    bad = files("bad.json", "{not json")
    result = run(*[a.replace("{file}", str(bad)) for a in args], code=2)
    assert message in result.stderr
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    after = rows(db_url, "SELECT (SELECT count(*) FROM versions) + (SELECT count(*) FROM events) "
                         "+ (SELECT count(*) FROM projects) + (SELECT count(*) FROM assets)")
    assert after == before


def test_unreachable_database_is_a_clear_error(env, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://nobody:x@127.0.0.1:1/none")
    result = CliRunner().invoke(app, ["project", "list"])
    assert result.exit_code == 2 and "cannot reach the database" in result.stderr


def test_db_upgrade_and_downgrade_commands(run, db_url):
    assert "revision base" in run("db", "downgrade", "--revision", "base").stdout
    result = CliRunner().invoke(app, ["project", "list"])
    assert result.exit_code == 2 and "run `backlot db upgrade`" in result.stderr
    assert f"revision {migrate.head_revision()}" in run("db", "upgrade").stdout
    assert json.loads(run("db", "status", "--json").stdout)["revision"] == migrate.head_revision()


@pytest.mark.slow
def test_demo_runs_end_to_end_through_a_real_worker(run, db_url, tmp_path):
    result = run("demo", "--output", tmp_path / "demo")
    said = " ".join(result.stdout.split())  # rich wraps long lines
    assert "after regeneration: 0 stale version(s), 0 item(s) left to regenerate" in said
    # mara's new costume: her adapter retrains; her first shot (sh0040) and every shot after it
    # (continuity) re-render; sh0010-sh0030 stay as they were.
    assert "adapter demo/adapters/mara@2 retrained on the new look, then 7 shots re-rendered" in said
    assert "continuity: the mean difference at a cut is" in said
    assert "uses the adapter retrained on the new costume" in said and "not remade: nothing it uses changed" in said
    assert (tmp_path / "demo" / "contact_sheet.png").stat().st_size > 0
    import opentimelineio as otio

    conformed = otio.adapters.read_from_file(str(tmp_path / "demo" / "sq010_conformed.otio"))
    assert len(list(conformed.find_clips())) == 10
    check_demo_credentials()
    stale = json.loads(run("stale", "demo", "--json").stdout)
    assert [s for s in stale if s["kind"] == "shot_render"] == []
    # sh0040, mara's first shot: remade with her retrained adapter; sh0100 (nobody in it): remade
    # only because the shot before it changed (its continuity input).
    mara = json.loads(run("versions", "demo/shots/sq010_sh0040/main", "--json").stdout)
    assert [v["number"] for v in mara] == [1, 2]
    assert {i["role"] for i in mara[1]["inputs"]} >= {"continuity", "adapter", "regenerated_from", "base_model"}
    last = json.loads(run("versions", "demo/shots/sq010_sh0100/main", "--json").stdout)
    assert [v["number"] for v in last] == [1, 2]
    assert {i["role"] for i in last[1]["inputs"]} >= {"continuity", "regenerated_from", "base_model"}


def check_demo_credentials() -> None:
    """Every shot render the demo made (worker jobs included) has a signed copy of each file that reads
    back valid, binds the stored file, and carries the lineage the tracker records for it."""
    import backlot
    from backlot import provenance
    from backlot.db.provenance import SignedFile, VersionCredential
    from sqlalchemy import select

    with backlot.session() as s:
        renders = [v for a in backlot.list_assets(s, "demo", "shot_render")
                   for v in backlot.list_versions(s, "demo", a.name)]
        assert len(renders) == 17  # ten shots, seven of them re-rendered
        for version in renders:
            credential = s.get(VersionCredential, version.id)
            assert credential is not None and credential.lineage == provenance.build_lineage(s, version), version.ref
            signed = set(s.scalars(select(SignedFile.path).where(SignedFile.version_id == version.id)))
            assert signed == {f.path for f in version.files}, version.ref
            report = provenance.check_version(s, version.ref)
            assert report.ok and {f.state for f in report.files} == {"trusted"}, report.to_dict()  # the demo's anchor
            assert all(f.lineage["ref"] == version.ref for f in report.files)


def test_adapter_approval_setting_and_regen_bad_input(run, db_url):
    run("project", "create", "film")
    refused = run("project", "set-adapter-approval", "film", "sometimes", code=2)
    assert "adapter approval 'sometimes' is not one of: review, auto" in refused.stderr
    assert json.loads(run("project", "list", "--json").stdout)[0]["adapter_approval"] == "review"
    run("project", "set-adapter-approval", "film", "auto")
    assert json.loads(run("project", "list", "--json").stdout)[0]["adapter_approval"] == "auto"
    assert "no project 'nope'" in run("regen", "plan", "nope", code=2).stderr
    assert json.loads(run("regen", "plan", "film", "--json").stdout) == []
