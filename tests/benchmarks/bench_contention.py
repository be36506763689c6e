"""A render under CPU contention: OpenMP's idle threads spinning (ACTIVE) vs sleeping (PASSIVE,
Backlot's default), each alone and beside one CPU-bound process, in one run.

    .venv/bin/python -m tests.benchmarks.bench_contention [--frames 12] [--repeat 3]

Each measurement is a fresh process rendering the same frames (the tiny model, first frame
from the prompt, then img2img frame to frame, as a shot is made) with torch's default thread
count; the competing process is a pure-Python busy loop. Prints the median wall time of each
case and the ratios that matter: loaded / quiet for each policy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

RENDER = """
import sys, time, torch
import backlot.generation  # applies Backlot's default policy unless the environment set one
from diffusers import DiffusionPipeline, StableDiffusionImg2ImgPipeline
pipe = DiffusionPipeline.from_pretrained(sys.argv[1], local_files_only=True); pipe.set_progress_bar_config(disable=True)
img2img = StableDiffusionImg2ImgPipeline(**pipe.components); img2img.set_progress_bar_config(disable=True)
started = time.monotonic()
image = pipe("mara", num_inference_steps=6, height=64, width=64, generator=torch.Generator().manual_seed(0)).images[0]
for i in range(1, int(sys.argv[2])):
    image = img2img("mara", image=image, strength=0.5, num_inference_steps=6,
                    generator=torch.Generator().manual_seed(i)).images[0]
print(time.monotonic() - started)
"""


def render_seconds(folder: Path, frames: int, policy: str) -> float:
    env = dict(os.environ, OMP_WAIT_POLICY=policy)
    done = subprocess.run([sys.executable, "-c", RENDER, str(folder), str(frames)], env=env, capture_output=True,
                          text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from backlot.generation.tiny import build_tiny_pipeline

    with tempfile.TemporaryDirectory() as tmp:
        folder = build_tiny_pipeline(Path(tmp) / "tiny", seed=0)
        results: dict[tuple[str, str], float] = {}
        for load in ("quiet", "one busy process"):
            burner = None
            if load != "quiet":
                burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            try:
                for policy in ("ACTIVE", "PASSIVE"):
                    results[(policy, load)] = statistics.median(
                        render_seconds(folder, args.frames, policy) for _ in range(args.repeat))
            finally:
                if burner:
                    burner.kill()
                    burner.wait()
    print(f"{args.frames} frames, median of {args.repeat}, {os.cpu_count()} cores")
    print(f"{'policy':<10}{'quiet':>10}{'loaded':>10}{'loaded/quiet':>14}")
    for policy in ("ACTIVE", "PASSIVE"):
        quiet, loaded = results[(policy, "quiet")], results[(policy, "one busy process")]
        print(f"{policy:<10}{quiet:>9.2f}s{loaded:>9.2f}s{loaded / quiet:>13.1f}x")
    print(f"loaded: ACTIVE / PASSIVE = {results[('ACTIVE', 'one busy process')] / results[('PASSIVE', 'one busy process')]:.1f}x")


if __name__ == "__main__":
    main()
