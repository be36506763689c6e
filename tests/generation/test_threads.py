"""OpenMP's wait policy: Backlot makes idle threads sleep, and that never changes the bytes."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

RENDER = """
import hashlib, sys, torch
import backlot.generation  # sets the default wait policy before torch's OpenMP starts
from diffusers import DiffusionPipeline
pipe = DiffusionPipeline.from_pretrained(sys.argv[1], local_files_only=True)
pipe.set_progress_bar_config(disable=True)
image = pipe("mara", num_inference_steps=3, height=64, width=64, generator=torch.Generator().manual_seed(0)).images[0]
import os; print(os.environ["OMP_WAIT_POLICY"], hashlib.sha256(image.tobytes()).hexdigest())
"""


def _render(folder, policy: str | None) -> tuple[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    env["BACKLOT_TORCH_THREADS"] = "2"
    done = subprocess.run([sys.executable, "-c", RENDER, str(folder)], env=env, capture_output=True, text=True,
                          check=True)
    policy_seen, digest = done.stdout.split()
    return policy_seen, digest


def test_idle_threads_sleep_by_default_and_bytes_do_not_depend_on_it(tiny_folder):
    default_policy, passive = _render(tiny_folder, None)
    user_policy, active = _render(tiny_folder, "ACTIVE")
    assert default_policy == "PASSIVE" and user_policy == "ACTIVE"  # a user's own setting wins
    assert passive == active
    assert len(passive) == len(hashlib.sha256().hexdigest())
