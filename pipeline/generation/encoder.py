"""The MP4 encoder, in a small process of its own.

The same frames must always encode to the same bytes, and libx264 through PyAV did not
when it ran inside a long-lived process that had trained and rendered before (the state it
picked up was never pinned down; a fresh process that only encodes is always identical). So
previews are encoded by this helper: it reads PNG frames from disk and writes the MP4,
nothing else. One helper per process is kept running; `python -m backlot.generation.encoder`
is the helper itself, reading one JSON request per line on stdin: `open`, then one `frame`
per PNG as soon as it is written (so encoding overlaps rendering), then `close` (or `abort`),
which alone is answered.

The helper runs in a process group of its own and ignores SIGINT: a Ctrl-C at the terminal
reaches only the process that started it, which aborts the preview and, as it exits, closes the
helper's input and waits for it (no helper outlives its process, none prints a traceback).
"""

from __future__ import annotations

import atexit
import json
import signal
import subprocess
import sys
import threading
from fractions import Fraction
from pathlib import Path
from typing import Sequence

from backlot.errors import BacklotError

_lock = threading.Lock()
_helper: subprocess.Popen | None = None


class PreviewStream:
    """An MP4 the helper encodes while frames are still being rendered.

    Holds the helper from open to close; `add` may be called from another thread."""

    def __init__(self, out: Path, fps: Fraction):
        self.out, self._done = out, False
        _lock.acquire()
        try:
            self._helper = _running_helper()
            self._send({"open": str(out), "fps": [fps.numerator, fps.denominator]})
        except BaseException:
            _lock.release()
            raise

    def add(self, frame: Path) -> None:
        self._send({"frame": str(frame)})

    def close(self) -> Path:
        answer = self._finish({"close": True})
        if not answer.get("ok"):
            raise BacklotError(f"encoding {self.out.name} failed: {answer.get('error')}")
        return self.out

    def abort(self) -> None:
        """Stop; the helper removes the partial file."""
        if self._done:
            return
        try:
            self._finish({"abort": True})
        except BacklotError:
            pass  # the helper is gone, and with it the half-written file's writer

    def _send(self, request: dict) -> None:
        try:
            self._helper.stdin.write(json.dumps(request) + "\n")
            self._helper.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            raise BacklotError(f"the preview encoder stopped while encoding {self.out.name}") from None

    def _finish(self, request: dict) -> dict:
        self._done = True
        try:
            self._send(request)
            reply = self._helper.stdout.readline()
        finally:
            _lock.release()
        if not reply:
            raise BacklotError(f"the preview encoder stopped while encoding {self.out.name}")
        return json.loads(reply)


def encode_preview(frames: Sequence[Path], out: Path, fps: Fraction) -> Path:
    """Encode PNG `frames` to an H.264 MP4 at `out` through the helper process."""
    stream = PreviewStream(out, fps)
    try:
        for frame in frames:
            stream.add(frame)
    except BaseException:
        stream.abort()
        raise
    return stream.close()


def start_helper() -> None:
    """Start this process's helper now rather than on its first preview (a worker process
    does at start, beside loading its base model)."""
    with _lock:
        _running_helper()


def _running_helper() -> subprocess.Popen:
    global _helper
    if _helper is None or _helper.poll() is not None:
        _helper = subprocess.Popen([sys.executable, "-m", "backlot.generation.encoder"], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True, bufsize=1, process_group=0)
    return _helper


@atexit.register
def _stop_helper(wait: float = 10.0) -> None:
    """At exit: end of input tells the helper to stop; killed if it does not within `wait` seconds."""
    helper = _helper
    if helper is None or helper.poll() is not None:
        return
    try:
        helper.stdin.close()
    except OSError:
        pass
    try:
        helper.wait(wait)
    except subprocess.TimeoutExpired:
        helper.kill()
        helper.wait()


def _serve() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop (see the module docstring)
    from PIL import Image

    from backlot.generation.media import PreviewWriter

    writer: PreviewWriter | None = None
    error = None
    for line in sys.stdin:
        request = json.loads(line)
        if "open" in request:
            writer, error = PreviewWriter(Path(request["open"]), Fraction(*request["fps"])), None
        elif "frame" in request and error is None and writer is not None:
            try:
                with Image.open(request["frame"]) as image:
                    writer.add(image.convert("RGB"))
            except Exception as exc:  # noqa: BLE001 - reported at close, where the caller raises
                error = f"{type(exc).__name__}: {exc}"
                writer.abort()
        elif "close" in request or "abort" in request:
            _answer(writer, error, "abort" in request)
            writer = None


def _answer(writer, error: str | None, abort: bool) -> None:
    answer = {"ok": error is None}
    if error is not None:
        answer["error"] = error
    elif abort:
        writer.abort()
    else:
        try:
            writer.close()
        except Exception as exc:  # noqa: BLE001 - reported to the caller, which raises
            writer.abort()
            answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    _serve()
