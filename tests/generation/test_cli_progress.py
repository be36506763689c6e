"""`backlot render` and `backlot adapter train` as a person runs them: a progress bar on a terminal,
nothing extra with --json, and Ctrl-C (SIGINT to the foreground process group, as a terminal sends it)
ends with one line, exit 130, no helper process left and nothing published."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import backlot

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
INTERRUPTED = "interrupted; nothing was published"


def backlot_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "backlot.services.cli", *args]


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (from /proc: no extra package)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


class Terminal:
    """A command whose stderr is a terminal (a pty) and stdout a pipe, in its own process group."""

    def __init__(self, args: list[str]):
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL,
                                     start_new_session=True, env=os.environ | {"COLUMNS": "120", "TERM": "xterm"})
        os.close(slave)
        self.seen = b""

    def read_until(self, pattern: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, ANSI.sub("", self.seen.decode(errors="replace"))):
            assert time.monotonic() < deadline and self.proc.poll() is None, (pattern, self.text())
            self._read(0.2)
        return self.text()

    def finish(self, timeout: float = 120) -> tuple[int, bytes]:
        """Wait for the exit, reading the terminal meanwhile (a full pty would block the command)."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            assert time.monotonic() < deadline, f"still running after {timeout} s: {self.text()[-500:]!r}"
            self._read(0.1)
        while self._read(0.05):
            pass
        os.close(self.master)
        return self.proc.returncode, self.proc.stdout.read()

    def ctrl_c(self) -> None:
        os.killpg(self.proc.pid, signal.SIGINT)

    def text(self) -> str:
        return self.seen.decode(errors="replace")

    def _read(self, wait: float) -> bool:
        if not select.select([self.master], [], [], wait)[0]:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:  # the other end is closed
            return False
        self.seen += data
        return bool(data)


def after_last_erase(text: str) -> str:
    """What stays on the screen once the transient progress bar is erased."""
    return ANSI.sub("", text.rsplit("\x1b[2K", 1)[-1]).replace("\r", "")


def versions_of(asset: str) -> int:
    with backlot.session() as s:
        return len(backlot.list_versions(s, "film", asset)) if asset in {
            a.name for a in backlot.list_assets(s, "film")} else 0


def test_render_shows_progress_on_a_terminal_and_nothing_with_json(production):
    term = Terminal(backlot_cmd("render", "film", "sh010", "--prompt", "a castle", "--frames", "6", "--steps", "2",
                                "--no-continuity"))
    shown = ANSI.sub("", term.read_until(r"rendering sh010.*\d+/6", timeout=240))
    code, stdout = term.finish()
    assert code == 0 and b"rendered film/shots/sh010/main@1" in stdout
    assert re.search(r"rendering sh010 .*\d+/6 frames", shown), shown  # frames done of the total, with an ETA
    assert re.search(r"\d+:\d\d:\d\d|-:--:--", shown), shown

    quiet = Terminal(backlot_cmd("render", "film", "sh020", "--prompt", "a castle", "--frames", "3", "--steps", "2",
                                 "--no-continuity", "--json"))
    code, stdout = quiet.finish(timeout=240)
    assert code == 0 and quiet.seen == b"", quiet.text()  # --json: nothing but the JSON document
    assert '"ref": "film/shots/sh020/main@1"' in stdout.decode()


def test_ctrl_c_mid_render_prints_one_line_and_leaves_nothing(production):
    term = Terminal(backlot_cmd("render", "film", "sh010", "--prompt", "a castle", "--frames", "2000", "--steps", "2",
                                "--no-continuity"))
    term.read_until(r"rendering sh010.*[1-9]\d*/2000", timeout=240)  # mid-way: frames done, the encoder running
    helpers = descendants(term.proc.pid)
    assert helpers, "the preview encoder helper runs while frames are rendered"
    term.ctrl_c()
    code, stdout = term.finish()
    assert code == 130, term.text()
    assert "Traceback" not in term.text() and "KeyboardInterrupt" not in term.text(), term.text()
    assert after_last_erase(term.text()).strip() == INTERRUPTED, term.text()
    assert stdout == b""
    left = {pid for pid in helpers if Path(f"/proc/{pid}").exists()
            and Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"}
    assert not left, f"helper process(es) {left} left running"
    assert versions_of("shots/sh010/main") == 0


def test_ctrl_c_mid_training_prints_one_line(production):
    term = Terminal(backlot_cmd("adapter", "train", "film", "adapters/mara", "--from", production["art"],
                                "--base", production["base"], "--steps", "100000"))
    term.read_until(r"training adapters/mara.*[1-9]\d*/100000", timeout=240)
    term.ctrl_c()
    code, stdout = term.finish()
    assert code == 130, term.text()
    assert "Traceback" not in term.text() and "KeyboardInterrupt" not in term.text(), term.text()
    assert after_last_erase(term.text()).strip() == INTERRUPTED, repr(term.text()[-400:])
    assert stdout == b""
    assert versions_of("adapters/mara") == 0


def test_train_errors_are_one_line_with_the_right_article(production):
    result = subprocess.run(backlot_cmd("adapter", "train", "film", "adapters/x", "--from", production["art"],
                                        "--base", production["art"]), capture_output=True, text=True, timeout=240)
    assert result.returncode == 2, result.stderr
    assert result.stderr == "error: film/characters/mara@1 is a concept_art, not a base_model\n"
    with backlot.session() as s:
        adapter = backlot.publish_version(s, "film", "adapters/y", [production["tmp"] / "mara.png"], kind="adapter")
    result = subprocess.run(backlot_cmd("adapter", "train", "film", "adapters/x", "--from", adapter.ref,
                                        "--base", production["base"]), capture_output=True, text=True, timeout=240)
    assert result.returncode == 2 and result.stderr.startswith("error: film/adapters/y@1 is an adapter;"), result.stderr
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("args", [["render", "film", "sh010", "--prompt", "x", "--size", "nope"]])
def test_render_errors_on_a_terminal_are_one_line(production, args):
    term = Terminal(backlot_cmd(*args))
    code, _ = term.finish(timeout=240)
    assert code == 2
    assert ANSI.sub("", term.text()).replace("\r", "").strip().splitlines() == [
        "error: --size 'nope': expected WIDTHxHEIGHT, e.g. 64x64"]
