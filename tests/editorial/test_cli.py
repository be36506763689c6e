"""`backlot cut ...` end to end on a real database; bad input exits 2 and writes nothing; a fuzz test."""

from __future__ import annotations

import csv
import io
import json
import random
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from backlot.services.cli.app import app

TABLES = ("cut_revisions", "cut_items", "cut_changes", "cut_settings", "shots", "sequences", "events")


@pytest.fixture
def run(run):
    """The shared CLI runner, with a 24 fps project `film`."""
    run("project", "create", "film", "--fps", "24")
    return run


@pytest.fixture
def counts(db_url):
    engine = create_engine(db_url)

    def count() -> tuple[int, ...]:
        with engine.connect() as conn:
            return tuple(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in TABLES)

    yield count
    engine.dispose()


def test_import_diff_conform_through_the_cli(run, samples, tmp_path):
    first = json.loads(run("cut", "import", "film", samples / "079_HA_V05.edl", "--create-shots", "--json").stdout)
    assert first["created"] and first["revision"]["number"] == 1 and first["summary"] == {"added": 36}
    assert len(first["unmatched"]) == 21 and first["revision"]["fps"] == "24/1"
    shown = run("cut", "import", "film", samples / "079_HA_006.edl", "--create-shots").stdout
    assert "revision 2" in shown and "079_HA_0160" in shown and "head trimmed by 10" in shown
    again = run("cut", "import", "film", samples / "079_HA_006.edl", "--create-shots").stdout
    assert "already revision 2" in again

    diff = json.loads(run("cut", "diff", "film", "--json").stdout)
    assert (diff["from_revision"], diff["to_revision"], diff["stored"]) == (1, 2, True)
    rows = list(csv.DictReader(io.StringIO(run("cut", "diff", "film", "--csv").stdout)))
    trimmed = next(r for r in rows if r["shot"] == "079_HA_0160")
    assert (trimmed["kinds"], trimmed["head"], trimmed["needs_render"]) == ("head_trimmed", "-10", "true")
    assert {r["kinds"] for r in rows} >= {"added", "omitted", "unchanged", "source_changed", "tail_extended"}
    run("cut", "diff", "film", "--json", "--csv", code=2)

    revisions = json.loads(run("cut", "list", "film", "--json").stdout)
    assert [r["number"] for r in revisions] == [1, 2]
    items = json.loads(run("cut", "show", "film", "--revision", "1", "--json").stdout)
    assert items[0]["record_timecode"] == "06:00:00:00" and items[0]["shot"] == "079_HA_0010"
    assert run("cut", "show", "film").stdout.count("\n") > 56  # a row per clip

    out = tmp_path / "conformed.otio"
    conformed = json.loads(run("cut", "conform", "film", out, "--json").stdout)
    assert conformed["relinked"] == 0 and out.exists() and len(conformed["clips"]) == 56
    assert "keep their media" in run("cut", "conform", "film", tmp_path / "c.edl").stdout


def test_settings_through_the_cli(run, samples, tmp_path):
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps([{"kind": "name", "pattern": r"(?P<shot>RFE_[A-Z]+_\d{4})"}]))
    shown = json.loads(run("cut", "settings", "film", "--rules", rules, "--handles", "4", "--json").stdout)
    assert shown["handles"] == 4 and shown["rules"] == [{"kind": "name", "pattern": r"(?P<shot>RFE_[A-Z]+_\d{4})"}]
    result = json.loads(run("cut", "import", "film", samples / "jrun_demo_relative_frames1.edl", "--create-shots",
                            "--json").stdout)
    assert result["summary"] == {"added": 3}
    assert "RFE_" in run("cut", "settings", "film").stdout
    rules.write_text("[{")
    run("cut", "settings", "film", "--rules", rules, code=2)


def test_bad_input_exits_2_and_writes_nothing(run, samples, tmp_path, counts, edl):
    before = counts()
    binary = tmp_path / "binary.edl"
    binary.write_bytes(bytes(range(256)) * 8)
    cases = [
        (tmp_path / "missing.edl", "no such file"),
        (binary, "binary.edl: is a binary file"),
        (samples / "JA_DIEDL_SG_TEST_140212.edl", "JA_DIEDL_SG_TEST_140212.edl, line 16, event 006"),
    ]
    for path, message in cases:
        result = run("cut", "import", "film", path, "--create-shots", code=2)
        assert message in result.stderr and result.stdout == ""
        assert len(result.stderr.strip().splitlines()) == 1
    at25 = edl("at25.edl", [("a", "01:00:00:00", "01:00:01:00", "01:00:00:00", "01:00:01:00")])
    result = run("cut", "import", "film", at25, "--rate", "25", code=2)
    assert "at25.edl: the cut runs at 25 fps but project film at 24 fps" in result.stderr
    run("cut", "import", "film", samples / "079_HA_V05.edl", "--name-unmatched", "{nope}", code=2)
    run("cut", "import", "nope", samples / "079_HA_V05.edl", code=2)
    run("cut", "diff", "film", code=2)
    run("cut", "conform", "film", tmp_path / "x.otio", code=2)
    assert counts() == before


def test_a_first_import_creates_its_shots_and_says_which(run, samples):
    shown = run("cut", "import", "film", samples / "079_HA_V05.edl")  # no flag: the shots are created
    said = shown.stdout
    assert "revision 1 of film: 57 clip(s)" in said and "36 mapped to shots, 21 without a shot" in said
    created = json.loads(run("shot", "list", "film", "--json").stdout)
    assert len(created) == 36 and f"created 36 shot(s): {created[0]['code']}, " in said
    assert "were not created" not in said


def test_without_creating_shots_nothing_claims_to_be_mapped(run, samples):
    result = run("cut", "import", "film", samples / "079_HA_V05.edl", "--no-create-shots")
    said = result.stdout
    assert "0 mapped to shots, 57 without a shot" in said, said
    assert "36 shot(s) named by the cut are not in the project and were not created (--no-create-shots): " \
           "079_HA_0010, " in said
    assert "created" not in said.replace("not created", "")
    change_rows = [line for line in said.splitlines() if "079_HA_0010 " in line and "added" in line]
    assert change_rows and all("no shot" in line and "needs render" not in line for line in change_rows), said
    assert json.loads(run("shot", "list", "film", "--json").stdout) == []
    listed = json.loads(run("cut", "list", "film", "--json").stdout)
    assert listed[0]["matched_count"] == 0
    # The strict run stays what it was; a later import with creation creates them and says so.
    again = run("cut", "import", "film", samples / "079_HA_V05.edl").stdout
    assert "36 mapped to shots" in again and "created 36 shot(s)" in again


def test_a_cut_much_shorter_than_the_last_warns_and_strict_refuses_it(run, samples, tmp_path, counts):
    run("cut", "import", "film", samples / "079_HA_V05.edl")
    lines = (samples / "079_HA_V05.edl").read_bytes().splitlines(keepends=True)
    short = tmp_path / "079_HA_V06.edl"
    short.write_bytes(b"".join(lines[:len(lines) // 3]))  # a file cut short at a line boundary
    before = counts()
    refused = run("cut", "import", "film", short, "--strict", code=2)
    assert re.fullmatch(r"error: 079_HA_V06\.edl: omits (\d+) of the 36 shots of revision 1 \(\d+%, more than "
                        r"25%\): check that the file is complete; nothing was imported\n", refused.stderr), refused.stderr
    assert refused.stdout == "" and counts() == before

    warned = run("cut", "import", "film", short, "--json")
    omitted = int(re.search(r"omits (\d+) of the 36 shots", warned.stderr).group(1))
    assert warned.stderr.startswith("warning: 079_HA_V06.edl omits") and "--strict" in warned.stderr
    body = json.loads(warned.stdout)  # stdout stays one JSON document
    assert body["summary"]["omitted"] == omitted > 9 and body["warnings"] == [warned.stderr[len("warning: "):].strip()]

    small = tmp_path / "079_HA_V07.edl"
    small.write_bytes(b"".join(lines))
    fine = run("cut", "import", "film", small, "--strict")  # the whole cut again: nothing to warn about
    assert "warning" not in fine.stderr and "revision 3" in fine.stdout


# -- fuzz: mutated real EDLs never escape as a traceback, and a failed import leaves no row ------

FUZZ_SOURCES = ["079_HA_V05.edl", "090PC_091MJ_100TC_V05_TURNOVER_20150123.edl", "raphe_temp1_rfe_R01_v01_TRANSITIONS.edl",
                "SR_010.edl", "HSM_SATL_v001_shotNameNote.edl", "duplicate_cut_items.edl", "ER_00119_with_comments.edl"]


def mutate(data: bytes, rng: random.Random) -> bytes:
    lines = data.splitlines(keepends=True)
    kind = rng.randrange(9)
    if kind == 0:
        return data[:rng.randrange(len(data))]
    if kind == 1:
        out = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            out[rng.randrange(len(out))] = rng.randrange(256)
        return bytes(out)
    if kind == 2 and len(lines) > 1:
        del lines[rng.randrange(len(lines))]
    elif kind == 3:
        i = rng.randrange(len(lines))
        lines.insert(i, lines[i])
    elif kind == 4 and len(lines) > 1:
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    elif kind == 5:
        i = rng.randrange(len(lines))
        lines[i] = rng.choice([b"99:99:99:99", b"-00:00:01:00", b"\x00\x00", b"001  X  V  C  ", b"",
                               b"M2   X   -999.0  01:00:00:00", b"* LOC: banana", b"\xff\xfe"]) + b"\n"
    elif kind == 6:
        text = bytearray(data)
        digits = [k for k, b in enumerate(text) if 48 <= b <= 57]
        for k in rng.sample(digits, min(len(digits), rng.randint(1, 6))):
            text[k] = rng.randrange(48, 58)
        return bytes(text)
    elif kind == 7:
        return data + bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    else:
        i = rng.randrange(len(lines))
        lines[i] = lines[i].replace(b" C ", b" D 030 ", 1)
    return b"".join(lines)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(source=st.sampled_from(FUZZ_SOURCES), seed=st.integers(0, 2**32 - 1))
def test_fuzzed_edls_fail_cleanly(run, samples, tmp_path, counts, source, seed):
    data = mutate((samples / source).read_bytes(), random.Random(seed))
    path = tmp_path / f"fuzz_{seed}.edl"
    path.write_bytes(data)
    before = counts()
    result = CliRunner().invoke(app, ["cut", "import", "film", str(path), "--create-shots", "--json"])
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{source} seed {seed}: {type(result.exception).__name__}: {result.exception}")
    assert result.exit_code in (0, 2), result.stderr
    if result.exit_code == 2:
        assert counts() == before, "a failed import left rows behind"
        assert result.stderr.strip().startswith("error:") and path.name in result.stderr
        assert "Traceback" not in result.stderr
    else:
        assert json.loads(result.stdout)["revision"]["number"] >= 1
