"""What the CLI prints: stored and typed text is shown as it is (never read as Rich markup or
emoji), and piped output does not wrap (a table row is one line, a reference is never split)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

BRACKETS = "[red]x[/red] [false] [bold] :smile:"


def test_text_with_brackets_is_printed_as_it_is(run, files, tmp_path, monkeypatch):
    monkeypatch.setenv("BACKLOT_USER", "[red]ann[/red]")
    run("project", "create", "film", "--name", BRACKETS)
    assert BRACKETS in run("project", "list").stdout
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({"caption_truncated": [False], "prompt": BRACKETS}))
    run("publish", "film", "art", files("[b]x[false].png"), "--kind", "concept_art", "--recipe", recipe,
        "--meta", f"look={BRACKETS}")
    run("note", "film/art@1", BRACKETS)
    shown = run("show", "film/art@1").stdout
    assert '"caption_truncated": [false]' in shown and json.dumps(BRACKETS) in shown
    assert "file   [b]x[false].png" in shown
    assert f"[red]ann[/red]: {BRACKETS}" in shown and "by [red]ann[/red]" in shown
    assert "[red]ann[/red]" in run("versions", "film/art").stdout
    run("reject", "film/art@1", "--note", BRACKETS)
    assert "film/art@1 is review" in run("set-status", "film/art@1", "review").stdout

    refused = run("versions", "film/[red]x[/red]", code=2)
    assert "[red]x[/red]" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1


def test_piped_tables_keep_each_row_on_one_line(run, files, db_url):
    run("project", "create", "demo")
    inputs = []
    for n in range(6):
        version = json.loads(run("publish", "demo", f"adapters/cast_member_{n}", files(f"w{n}.safetensors"),
                                 "--kind", "adapter", "--json").stdout)
        inputs += ["--input", f"adapter={version['ref']}"]
    run("publish", "demo", "characters/mara", files("mara.png"), "--kind", "concept_art", *inputs)
    piped = subprocess.run([sys.executable, "-m", "backlot.services.cli", "versions", "demo/characters/mara"],
                           capture_output=True, text=True, timeout=120,
                           env=os.environ | {"COLUMNS": "80"})  # a terminal's width does not apply to a pipe
    assert piped.returncode == 0, piped.stderr
    rows = [line for line in piped.stdout.splitlines() if line.startswith("│")]
    assert len(rows) == 1, piped.stdout  # one version: one row, on one line
    assert len(rows[0]) > 80
    for n in range(6):
        assert f"adapter=demo/adapters/cast_member_{n}@1" in rows[0]
