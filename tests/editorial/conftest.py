"""Fixtures for the editorial tests: the real sample EDLs, and small edit files written on the fly."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The real production EDLs live beside the repository (../shared), or where BACKLOT_EDITORIAL_SAMPLES says.
SAMPLES = Path(os.environ.get("BACKLOT_EDITORIAL_SAMPLES")
               or Path(__file__).resolve().parents[2].parent / "shared" / "editorial-samples" / "sg-otio")


@pytest.fixture(scope="session")
def samples() -> Path:
    if not SAMPLES.is_dir():
        pytest.skip(f"editorial samples not found at {SAMPLES}")
    return SAMPLES


class EdlWriter:
    """Writes CMX 3600 EDLs from (clip name, source in, source out, record in, record out, comments) events."""

    def __init__(self, root: Path):
        self.root = root

    def __call__(self, name: str, events: list[tuple], title: str = "TEST", fcm: str = "NON-DROP FRAME") -> Path:
        lines = [f"TITLE: {title}", f"FCM: {fcm}", ""]
        for number, (clip, src_in, src_out, rec_in, rec_out, *comments) in enumerate(events, start=1):
            reel = clip[:8] if not comments or not str(comments[0]).startswith("REEL=") else comments.pop(0)[5:]
            lines.append(f"{number:03d}  {reel:<8} V     C        {src_in} {src_out} {rec_in} {rec_out}")
            lines.append(f"* FROM CLIP NAME:  {clip}")
            lines += [f"*{c}" for c in comments]
            lines.append("")
        path = self.root / name
        path.write_text("\n".join(lines) + "\n")
        return path


@pytest.fixture
def edl(tmp_path) -> EdlWriter:
    root = tmp_path / "edl"
    root.mkdir()
    return EdlWriter(root)
