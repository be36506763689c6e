"""The script in docs/openassetio.md runs as written, against the configuration the doc shows."""

from __future__ import annotations

import re
from pathlib import Path

import backlot

DOC = Path(__file__).resolve().parents[2] / "docs" / "openassetio.md"


def test_the_documented_script_resolves_and_publishes(production, tmp_path, monkeypatch, capsys):
    text = DOC.read_text()
    script = re.search(r"## A ten-line script.*?```python\n(.*?)```", text, re.S).group(1)
    config = re.search(r"```toml\n(.*?)```", text, re.S).group(1)
    (tmp_path / "backlot.toml").write_text(config)
    (tmp_path / "mara_paintover.png").write_bytes(b"paint-over")
    monkeypatch.setenv("OPENASSETIO_DEFAULT_CONFIG", str(tmp_path / "backlot.toml"))
    monkeypatch.chdir(tmp_path)
    exec(compile(script, str(DOC), "exec"), {"__name__": "__main__"})
    out = capsys.readouterr().out
    assert "painting over file:///" in out and "published backlot:///film/characters/mara?v=4" in out
    with backlot.session() as s:
        record = backlot.get_version(s, "film/characters/mara@4")
    assert [(i.role, i.ref) for i in record.inputs] == [("init_image", "film/characters/mara@3")]


def run_doc_script(heading: str, tmp_path, monkeypatch) -> None:
    text = DOC.read_text()
    script = re.search(rf"## {heading}.*?```python\n(.*?)```", text, re.S).group(1)
    config = re.search(r"```toml\n(.*?)```", text, re.S).group(1)
    (tmp_path / "backlot.toml").write_text(config)
    monkeypatch.setenv("OPENASSETIO_DEFAULT_CONFIG", str(tmp_path / "backlot.toml"))
    monkeypatch.chdir(tmp_path)
    exec(compile(script, str(DOC), "exec"), {"__name__": "__main__"})


def test_the_publishing_script_records_the_sequence_and_its_inputs(production, tmp_path, monkeypatch, capsys):
    run_doc_script("Publishing from a host", tmp_path, monkeypatch)
    assert "published backlot:///film/references/mara_turnaround?v=1" in capsys.readouterr().out
    with backlot.session() as s:
        record = backlot.get_version(s, "film/references/mara_turnaround@1")
    assert sorted(f.path for f in record.files) == ["turn.1001.png", "turn.1002.png", "turn.1003.png"]
    assert [(i.role, i.ref) for i in record.inputs] == [("concept_art", "film/characters/mara@3"),
                                                        ("init_image", "film/characters/mara@2")]


def test_the_lineage_script_answers_by_role(production, tmp_path, monkeypatch, capsys):
    run_doc_script("Lineage from a host", tmp_path, monkeypatch)
    out = capsys.readouterr().out.splitlines()
    art = "backlot:///film/characters/mara"
    assert out == [
        "input adapter ['backlot:///film/adapters/mara?v=1']",
        f"input concept_art ['{art}?v=1']",
        "input base_model ['backlot:///film/base_models/tiny?v=1']",
        "made from mara v1: ['backlot:///film/adapters/mara?v=1', 'backlot:///film/shots/sq010_sh0010/main?v=1']",
        f"first page: ['{art}?v=3', '{art}?v=2']",
        f"all versions: ['{art}?v=3', '{art}?v=2', '{art}?v=1']",
    ]
