"""Benchmark: orchestration overhead of the Celery worker on the tiny model.

    .venv/bin/python -m tests.benchmarks.bench_worker [--shots 24] [--frames 4]

The same N shot renders (a) called directly in one process with the pipeline cache, (b)
through the real worker — jobs written to PostgreSQL, dispatched through the embedded
broker (or BROKER_URL), run by a `backlot worker` process with its base model loaded once —
and (c) through the worker in the naive design, where every task loads the base model
(BACKLOT_NO_PIPELINE_CACHE=1). Prints wall times and ratios against (a).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pipeline
from pipeline import generation as gen
from pipeline import jobs
from pipeline.db.embedded import EmbeddedPostgres
from pipeline.generation.loading import clear_cache

RENDER = {"prompt": "bench", "steps": 4, "seed": 1}


WARMUP = 2  # renders before the clock starts, on both sides: first-use costs are not orchestration


def setup(project: str, shots: int, frames: int) -> str:
    with pipeline.session() as s:
        pipeline.create_project(s, project)
        base = gen.build_and_register_tiny(s, project)
        for i in range(shots + WARMUP):
            pipeline.create_shot(s, project, f"sh{i:04d}", sequence="sq1", frames=frames)
    return base.ref


def direct(project: str, base: str, shots: int) -> float:
    clear_cache()
    with pipeline.session() as s:
        for i in range(shots, shots + WARMUP):
            gen.render_shot(s, project, f"sh{i:04d}", gen.RenderSettings(**RENDER), base_model=base, continuity=False)
    started = time.perf_counter()
    with pipeline.session() as s:
        for i in range(shots):
            gen.render_shot(s, project, f"sh{i:04d}", gen.RenderSettings(**RENDER), base_model=base, continuity=False)
    return time.perf_counter() - started


def through_worker(project: str, base: str, shots: int, naive: bool, log: Path) -> float:
    from services.worker.app import create_app
    from services.worker.dispatch import dispatch
    from services.worker.submit import submit_render

    env = dict(os.environ, BACKLOT_DISPATCH_EVERY_S="1")
    if naive:
        env["BACKLOT_NO_PIPELINE_CACHE"] = "1"
    worker = subprocess.Popen([sys.executable, "-m", "services.cli", "worker", "--loglevel", "warning",
                               "--warm", base], stdout=open(log, "ab"), stderr=subprocess.STDOUT, env=env,
                              start_new_session=True)
    try:
        with pipeline.session() as s:
            warm = [submit_render(s, project, f"sh{i:04d}", RENDER, base_model=base, key=f"{project}:warm:{i}",
                                  continuity=False).id for i in range(shots, shots + WARMUP)]
        dispatch(create_app())
        wait_done(warm)
        started = time.perf_counter()
        with pipeline.session() as s:
            ids = [submit_render(s, project, f"sh{i:04d}", RENDER, base_model=base, key=f"{project}:{naive}:{i}",
                                 continuity=False).id for i in range(shots)]
        dispatch(create_app())
        wait_done(ids)
        return time.perf_counter() - started
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)


def wait_done(ids: list[int]) -> None:
    while True:
        with pipeline.session() as s:
            states = [jobs.get_job(s, i).state for i in ids]
        if all(state in ("done", "failed") for state in states):
            break
        time.sleep(0.05)
    assert set(states) == {"done"}, states


def main() -> None:
    parser = argparse.ArgumentParser(description="worker orchestration overhead")
    parser.add_argument("--shots", type=int, default=24)
    parser.add_argument("--frames", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update(BACKLOT_HOME=str(Path(tmp) / "home"), BACKLOT_STORE=str(Path(tmp) / "store"))
        os.environ.pop("DATABASE_URL", None)
        server = EmbeddedPostgres(Path(tmp) / "home")
        try:
            results = {}
            for mode in ("direct", "worker", "naive"):
                project = f"bench_{mode}"
                base = setup(project, args.shots, args.frames)
                if mode == "direct":
                    results[mode] = direct(project, base, args.shots)
                else:
                    results[mode] = through_worker(project, base, args.shots, mode == "naive", Path(tmp) / "w.log")
                print(f"{mode}: {results[mode]:.2f}s", flush=True)
        finally:
            server.stop()
    print(f"\n{args.shots} shot renders of {args.frames} frames on the tiny model")
    print(f"{'mode':<46} {'seconds':>8} {'ratio':>7}")
    for mode, label in (("direct", "direct, one process"), ("worker", "through the worker (base loaded once)"),
                        ("naive", "through the worker, base loaded per task")):
        print(f"{label:<46} {results[mode]:>8.2f} {results[mode] / results['direct']:>7.2f}")


if __name__ == "__main__":
    main()
