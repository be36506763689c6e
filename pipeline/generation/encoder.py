"""The MP4 encoder, in a small process of its own.

The same frames must always encode to the same bytes, and libx264 through PyAV did not
when it ran inside a long-lived process that had trained and rendered before (the state it
picked up was never pinned down; a fresh process that only encodes is always identical). So
previews are encoded by this helper: it reads PNG frames from disk and writes the MP4,
nothing else. One helper per process is kept running; `python -m pipeline.generation.encoder`
is the helper itself, reading one JSON request per line on stdin.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from fractions import Fraction
from pathlib import Path
from typing import Sequence

from pipeline.errors import BacklotError

_lock = threading.Lock()
_helper: subprocess.Popen | None = None


def encode_preview(frames: Sequence[Path], out: Path, fps: Fraction) -> Path:
    """Encode PNG `frames` to an H.264 MP4 at `out` through the helper process."""
    request = json.dumps({"frames": [str(f) for f in frames], "out": str(out),
                          "fps": [fps.numerator, fps.denominator]})
    with _lock:
        helper = _running_helper()
        helper.stdin.write(request + "\n")
        helper.stdin.flush()
        reply = helper.stdout.readline()
    if not reply:
        raise BacklotError(f"the preview encoder stopped while encoding {out.name}")
    answer = json.loads(reply)
    if not answer.get("ok"):
        raise BacklotError(f"encoding {out.name} failed: {answer.get('error')}")
    return out


def _running_helper() -> subprocess.Popen:
    global _helper
    if _helper is None or _helper.poll() is not None:
        _helper = subprocess.Popen([sys.executable, "-m", "pipeline.generation.encoder"], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True, bufsize=1)
    return _helper


def _serve() -> None:
    from PIL import Image

    from pipeline.generation.media import write_preview

    for line in sys.stdin:
        request = json.loads(line)
        try:
            images = [Image.open(path).convert("RGB") for path in request["frames"]]
            write_preview(images, Path(request["out"]), Fraction(*request["fps"]))
            answer = {"ok": True}
        except Exception as exc:  # noqa: BLE001 - reported to the caller, which raises
            answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    _serve()
