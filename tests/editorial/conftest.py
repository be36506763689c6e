"""Fixtures for the editorial tests: the real sample EDLs, and small edit files written on the fly."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Real production EDLs (Apache-2.0, see samples/README.md) ship beside the tests. A larger set
# is optional: BACKLOT_EDITORIAL_SAMPLES, or the sg-otio folder beside the repository.
SAMPLES = Path(__file__).resolve().parent / "samples"
MORE_SAMPLES = Path(os.environ.get("BACKLOT_EDITORIAL_SAMPLES")
                    or Path(__file__).resolve().parents[2].parent / "shared" / "editorial-samples" / "sg-otio")


@pytest.fixture(scope="session")
def samples() -> Path:
    return SAMPLES


@pytest.fixture(scope="session")
def more_samples() -> Path:
    if not MORE_SAMPLES.is_dir():
        pytest.skip(f"the larger sample set is optional and not found at {MORE_SAMPLES} (set BACKLOT_EDITORIAL_SAMPLES)")
    return MORE_SAMPLES


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
