"""Benchmark: rendering with the store on S3 (moto's server) vs on local disk, in one run.

    .venv/bin/python -m tests.benchmarks.bench_store [--frames 12] [--steps 4] [--rounds 3]

A render job as a worker runs it: find the base model's folder (`version_folder`: the store's
own folder on disk; on S3, a tree in the host's verified cache), render the frames, MP4 and
thumbnail (the tiny model, loaded once per process as a worker holds it), and store the
outputs (`Store.put_version`: objects plus the version folder). The two sides alternate each
round so both see the same machine load. S3 is moto's standalone server in its own process
on loopback, so the S3 side pays real HTTP (not network latency: figures for a real bucket
add your round trips). Also printed: the cold cost of a first fetch of the model into an
empty cache (what a fresh host pays once), against a warm hit.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from statistics import median

from backlot.generation.device import quiet_libraries
from backlot.generation.loading import clear_cache
from backlot.generation.models import version_folder
from backlot.generation.rendering import RenderPlan, RenderSettings, render_frames
from backlot.generation.tiny import build_tiny_pipeline
from backlot.storage import Store, plan_files
from backlot.store_cache import ObjectCache, local_version_folder
from backlot.tracker.records import FileRecord, VersionRecord


def start_moto() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise SystemExit("moto server did not start")
            time.sleep(0.2)


def model_version(store: Store, folder: Path) -> VersionRecord:
    import datetime

    files = sorted(p for p in folder.rglob("*") if p.is_file())
    content_hash, stored = store.put_version(plan_files(files, [str(p.relative_to(folder)) for p in files]))
    return VersionRecord(1, "bench/models/tiny@1", "bench", "models/tiny", "base_model", 1, "approved", content_hash,
                         "application/x-diffusers-pipeline", "bench", datetime.datetime.now(), {"family": "sd"},
                         None, None, tuple(FileRecord(f.path, f.sha256, f.size) for f in stored))


def render_job(plan: RenderPlan, store: Store, out: Path) -> float:
    start = time.perf_counter()
    version_folder(plan.base_model, store)
    files, _ = render_frames(plan, out, store)
    store.put_version(plan_files(files, [str(p.relative_to(out)) for p in files]))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    quiet_libraries()
    moto, endpoint = start_moto()
    try:
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            os.environ.update(BACKLOT_HOME=str(tmp / "home"), AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="bench",
                              AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
            import boto3

            boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench")
            local, s3 = Store(str(tmp / "store")), Store("s3://bench/store")
            tiny = build_tiny_pipeline(tmp / "tiny", seed=0)
            base_local, base_s3 = model_version(local, tiny), model_version(s3, tiny)
            size = sum(f.size for f in base_s3.files)

            cold, warm = [], []
            for r in range(args.rounds):  # the first fetch into an empty cache, then a hit
                cache = ObjectCache(tmp / f"cold{r}", 1 << 40)
                start = time.perf_counter()
                local_version_folder(s3, base_s3.content_hash, base_s3.files, cache)
                cold.append(time.perf_counter() - start)
                start = time.perf_counter()
                local_version_folder(s3, base_s3.content_hash, base_s3.files, cache)
                warm.append(time.perf_counter() - start)

            settings = RenderSettings(prompt="mara walks", steps=args.steps)
            plans = {name: RenderPlan(settings, 1001, args.frames, Fraction(24), base, [], None)
                     for name, base in (("local", base_local), ("s3", base_s3))}
            clear_cache()
            for name, store in (("local", local), ("s3", s3)):  # model loaded, cache warm: as a busy worker
                render_job(plans[name], store, tmp / f"warm-{name}")
            times: dict[str, list[float]] = {"local": [], "s3": []}
            for r in range(args.rounds):
                for name, store in (("local", local), ("s3", s3)) if r % 2 == 0 else (("s3", s3), ("local", local)):
                    plans[name] = RenderPlan(RenderSettings(prompt="mara walks", steps=args.steps, seed=r + 1), 1001,
                                             args.frames, Fraction(24), plans[name].base_model, [], None)
                    times[name].append(render_job(plans[name], store, tmp / f"{name}{r}"))
    finally:
        moto.terminate()
        moto.wait(10)
    fps = {name: args.frames / median(values) for name, values in times.items()}
    print(f"tiny model ({size / 1e6:.1f} MB, {len(base_s3.files)} files), {args.frames} frames of 64x64, "
          f"{args.steps} steps, {args.rounds} rounds (medians)")
    print(f"render job, store on local disk: {fps['local']:.2f} frames/s ({median(times['local']):.3f} s)")
    print(f"render job, store on S3 (moto), cache warm: {fps['s3']:.2f} frames/s ({median(times['s3']):.3f} s)")
    print(f"ratio S3 / local throughput: {fps['s3'] / fps['local']:.3f} (the goal: >= 0.9)")
    print(f"cold fetch of the model into an empty cache: {median(cold):.3f} s ({size / 1e6 / median(cold):.1f} MB/s); "
          f"warm hit: {median(warm) * 1000:.2f} ms")


if __name__ == "__main__":
    main()
