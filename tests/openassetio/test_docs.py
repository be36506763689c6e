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
