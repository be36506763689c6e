"""Process lifetimes: a child process that ends when the process that started it ends."""

from __future__ import annotations

import ctypes
import os
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int, signal_number: int, exit_code: int) -> None:
    """Ask the kernel to send `signal_number` when the parent dies (Linux), and exit with
    `exit_code` at once if it died before we asked (we were already handed to another parent)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal_number), 0, 0, 0)
    if os.getppid() != parent:
        os._exit(exit_code)
