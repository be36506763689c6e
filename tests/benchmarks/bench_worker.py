"""Benchmark: orchestration overhead of the Celery worker on the tiny model.

    .venv/bin/python -m tests.benchmarks.bench_worker [--shots 24] [--frames 4] [--rounds 3]

The same N shot renders (a) called directly in one process with the pipeline cache, (b)
through the real worker — jobs written to PostgreSQL, dispatched through the embedded
broker (or BROKER_URL), run by a `backlot worker` process with its base model loaded once —
and (c) through the worker in the naive design, where every task loads the base model
(BACKLOT_NO_PIPELINE_CACHE=1).

On a shared machine the load drifts, so the modes are interleaved: each round renders a
batch directly, then the same batch through the worker, and each worker mode is compared
with the direct batches of its own rounds. A worker batch's clock runs from just before its
jobs are written until the last one is marked done (`finished_at`, written in the
transaction that publishes the version). Two warm-up renders on each side before any clock.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select

import backlot
from backlot import generation as gen
from backlot.db.embedded import EmbeddedPostgres
from backlot.db.jobs import Job, JobState
from backlot.generation.loading import clear_cache

RENDER = {"prompt": "bench", "steps": 4, "seed": 1}
WARMUP = 2  # renders before the clock starts, on both sides: first-use costs are not orchestration
PROJECT = "bench"


def setup(shots: int, frames: int) -> str:
    with backlot.session() as s:
        backlot.create_project(s, PROJECT)
        base = gen.build_and_register_tiny(s, PROJECT)
        for i in range(shots + WARMUP):
            backlot.create_shot(s, PROJECT, f"sh{i:04d}", sequence="sq1", frames=frames)
    return base.ref


def shot_range(shots: int, warmup: bool) -> range:
    return range(shots, shots + WARMUP) if warmup else range(shots)


def direct(base: str, shots: int, warmup: bool = False) -> float:
    started = time.perf_counter()
    with backlot.session() as s:
        for i in shot_range(shots, warmup):
            gen.render_shot(s, PROJECT, f"sh{i:04d}", gen.RenderSettings(**RENDER), base_model=base, continuity=False)
    return time.perf_counter() - started


class Worker:
    """A `backlot worker` process (base model warmed at process start) for the whole run."""

    def __init__(self, base: str, naive: bool, log: Path):
        from backlot.services.worker.app import create_app

        env = dict(os.environ, BACKLOT_DISPATCH_EVERY_S="1")
        if naive:
            env["BACKLOT_NO_PIPELINE_CACHE"] = "1"
        self.base, self.naive, self.app, self.batches = base, naive, create_app(), 0
        self.process = subprocess.Popen([sys.executable, "-m", "backlot.services.cli", "worker", "--loglevel", "warning",
                                         "--warm", base], stdout=open(log, "ab"), stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True)

    def run(self, shots: int, warmup: bool = False) -> float:
        from backlot.services.worker.dispatch import dispatch
        from backlot.services.worker.submit import submit_render

        self.batches += 1
        started = time.time()
        with backlot.session() as s:
            ids = [submit_render(s, PROJECT, f"sh{i:04d}", RENDER, base_model=self.base, continuity=False,
                                 key=f"{self.naive}:{self.batches}:{i}").id for i in shot_range(shots, warmup)]
        dispatch(self.app)
        return self.wait_done(ids).timestamp() - started

    def wait_done(self, ids: list[int]) -> datetime:
        unfinished = (Job.id.in_(ids)) & Job.state.notin_([JobState.done, JobState.failed])
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the worker exited with code {self.process.returncode}")
            with backlot.session() as s:
                if not s.scalar(select(func.count()).where(unfinished)):
                    states = set(s.scalars(select(Job.state).where(Job.id.in_(ids))))
                    assert states == {JobState.done}, states
                    return s.scalar(select(func.max(Job.finished_at)).where(Job.id.in_(ids)))
            time.sleep(0.1)

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)


def compare(base: str, shots: int, rounds: int, naive: bool, log: Path) -> list[tuple[float, float]]:
    """(direct, worker) seconds per round."""
    worker = Worker(base, naive, log)
    try:
        clear_cache()
        direct(base, shots, warmup=True)
        worker.run(shots, warmup=True)
        results = []
        for _ in range(rounds):
            results.append((direct(base, shots), worker.run(shots)))
            print(f"  {'naive' if naive else 'worker'} round {len(results)}: direct {results[-1][0]:.2f}s, "
                  f"worker {results[-1][1]:.2f}s, ratio {results[-1][1] / results[-1][0]:.3f}", flush=True)
        return results
    finally:
        worker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="worker orchestration overhead")
    parser.add_argument("--shots", type=int, default=24)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update(BACKLOT_HOME=str(Path(tmp) / "home"), BACKLOT_STORE=str(Path(tmp) / "store"))
        os.environ.pop("DATABASE_URL", None)
        server = EmbeddedPostgres(Path(tmp) / "home")
        try:
            base = setup(args.shots, args.frames)
            results = {naive: compare(base, args.shots, args.rounds, naive, Path(tmp) / "worker.log")
                       for naive in (False, True)}
        finally:
            server.stop()
    print(f"\n{args.shots} shot renders of {args.frames} frames on the tiny model, {args.rounds} interleaved rounds")
    print(f"{'mode':<44} {'direct s':>9} {'worker s':>9} {'ratio':>6} {'per round':>13} {'ms/job':>7}")
    for naive, label in ((False, "through the worker (base loaded once)"), (True, "through the worker, base per task")):
        d, w = (sum(r[i] for r in results[naive]) for i in (0, 1))
        per_round = sorted(wr / dr for dr, wr in results[naive])
        spread = f"{per_round[0]:.2f}–{per_round[-1]:.2f}" if len(per_round) > 1 else f"{per_round[0]:.2f}"
        overhead_ms = 1000 * (w - d) / (args.shots * args.rounds)
        print(f"{label:<44} {d:>9.2f} {w:>9.2f} {w / d:>6.3f} {spread:>13} {overhead_ms:>7.1f}")
    print(f"median per-round ratio (base loaded once): {statistics.median(wr / dr for dr, wr in results[False]):.3f}")


if __name__ == "__main__":
    main()
