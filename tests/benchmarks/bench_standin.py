"""Benchmark: the learned stand-in — build time, continuity figures, and (optionally) the demo.

    taskset -c 0,1 .venv/bin/python -m tests.benchmarks.bench_standin [--workers 2,1] [--seeds 0,1,2,3] [--demo]
        [--model FOLDER]  # continuity only, on an existing build

1. Build: the stand-in from scratch into a fresh cache with each count of build worker
   processes side by side (2 is the default; 1 is a single process), wall and CPU seconds of
   this process and the ratio to the first (goal <= 60 s wall on 2 cores); then the cached
   call (a copy).
2. Continuity, on the built model through the same diffusers pipelines Backlot renders with,
   at the demo's settings (6 steps, guidance 2; text2img for a first frame, img2img at strength
   0.5 frame to frame, and from the previous shot's last frame at the demo's 0.3 and at
   RenderSettings' default 0.6; frame i uses seed + i): shot A "mara on the left in the square at dusk"
   (3 frames), then shot B "ovid on the right in the square at dusk" (3 frames) with
   continuity and without. Printed per seed: the boundary difference (A's last frame against
   B's first, mean |difference| of 8-bit RGB) with and without, their ratio (goal <= 0.5), and
   the frame-to-frame difference inside B.
3. `--demo`: `backlot demo` in a subprocess against the configured home (its wall time; goal
   <= 3 minutes; the stand-in build is cached by then).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from backlot.generation.continuity import frame_to_frame, mean_abs_difference
from backlot.generation.standin import learn, world
from backlot.services.cli.demo import RENDER

STEPS, GUIDANCE, FRAMES = RENDER["steps"], RENDER["guidance_scale"], 3
CONTINUITY_STRENGTH, FRAME_STRENGTH = 0.6, 0.5  # RenderSettings' defaults


def bench_build(worker_counts: list[int], root: Path) -> Path:
    import json

    first_wall = None
    for workers in worker_counts:
        config = learn.LearnConfig(workers=workers)
        started, cpu = time.perf_counter(), time.process_time()
        built = learn.build_learned_pipeline(root / f"built{workers}", config=config, cache=root / f"cache{workers}")
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        first_wall = first_wall or wall
        loss = json.loads((built / learn.RECIPE_NAME).read_text())["final_loss"]
        print(f"build from scratch, {workers} worker process(es): {wall:.1f} s wall ({wall / first_wall:.2f}x the "
              f"first), {cpu:.1f} s CPU here ({config.steps} steps of {config.batch_size}; final loss {loss}; "
              f"goal <= 60 s wall)", flush=True)
    started = time.perf_counter()
    copy = learn.build_learned_pipeline(root / "copy", config=config, cache=root / f"cache{workers}")
    print(f"cached call (a copy of the cached folder): {time.perf_counter() - started:.2f} s")
    return copy


def shot(pipes, prompt: str, seed: int, previous=None) -> list:
    import torch

    text2img, img2img = pipes
    frames = []
    for index in range(FRAMES):
        generator = torch.Generator().manual_seed(seed + index)
        common = dict(prompt=prompt, num_inference_steps=STEPS, guidance_scale=GUIDANCE, generator=generator)
        if previous is None:
            image = text2img(height=world.SIZE, width=world.SIZE, **common).images[0]
        else:
            image = img2img(image=previous, strength=CONTINUITY_STRENGTH if index == 0 else FRAME_STRENGTH,
                            **common).images[0]
        frames.append(image)
        previous = image
    return frames


def bench_continuity(folder: Path, seeds: list[int]) -> None:
    from backlot.generation.device import quiet_libraries

    quiet_libraries()
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionPipeline

    text2img = StableDiffusionPipeline.from_pretrained(folder, local_files_only=True)
    text2img.set_progress_bar_config(disable=True)
    img2img = StableDiffusionImg2ImgPipeline(**text2img.components)
    img2img.set_progress_bar_config(disable=True)
    pipes = (text2img, img2img)
    a = world.Scene("mara", "square", "dusk", "left").caption
    b = world.Scene("ovid", "square", "dusk", "right").caption
    ratios, joined_all, alone_all, within_all = [], [], [], []
    print(f"{'seed':>4} {'cut: continuity':>16} {'cut: none':>10} {'ratio':>6} {'frame to frame':>15}")
    for seed in seeds:
        first = shot(pipes, a, seed)
        joined = shot(pipes, b, seed, previous=first[-1])
        alone = shot(pipes, b, seed)
        with_c, without = mean_abs_difference(first[-1], joined[0]), mean_abs_difference(first[-1], alone[0])
        within = frame_to_frame(joined)
        ratios.append(with_c / without)
        joined_all.append(with_c), alone_all.append(without), within_all.append(within)
        print(f"{seed:>4} {with_c:>16.1f} {without:>10.1f} {with_c / without:>6.2f} {within:>15.1f}")
    print(f"mean: cut {statistics.mean(joined_all):.1f} with continuity vs {statistics.mean(alone_all):.1f} without "
          f"(ratio of means {statistics.mean(joined_all) / statistics.mean(alone_all):.2f}, worst seed "
          f"{max(ratios):.2f}; goal <= 0.5); frame to frame {statistics.mean(within_all):.1f}")


def bench_demo() -> None:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "backlot.services.cli", "demo"], capture_output=True, text=True)
    took = time.perf_counter() - started
    if result.returncode:
        print(result.stdout[-2000:], result.stderr[-2000:])
        raise SystemExit(f"demo failed with exit code {result.returncode}")
    print(f"demo: {took:.0f} s wall (goal <= 180 s)")
    for line in result.stdout.splitlines():
        if line.startswith(("continuity:", "learned stand-in ready", "done in")):
            print("  " + line)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", default="2,1", help="build worker process counts, side by side")
    parser.add_argument("--seeds", default="0,1,2,3")
    parser.add_argument("--demo", action="store_true")
    parser.add_argument("--model", type=Path, help="measure continuity on this built stand-in (skips the build)")
    args = parser.parse_args()
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.model or bench_build([int(w) for w in args.workers.split(",")], Path(tmp))
        torch.set_num_threads(2)
        for strength in (0.6, RENDER["continuity_strength"]):  # RenderSettings' default, and the demo's
            global CONTINUITY_STRENGTH
            CONTINUITY_STRENGTH = strength
            print(f"continuity_strength {strength}:")
            bench_continuity(folder, [int(s) for s in args.seeds.split(",")])
    if args.demo:
        bench_demo()


if __name__ == "__main__":
    main()
