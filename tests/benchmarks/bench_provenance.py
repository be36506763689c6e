"""Cost of Content Credentials: signing a render's files (frames, MP4 preview, thumbnail) as a
ratio of the same render without signing, in one run, on the tiny model's frame sizes.

    python -m tests.benchmarks.bench_provenance [--frames 24] [--steps 4] [--rounds 3]

The render runs without a database (as bench_generation does); signing uses a local CA and
signer made by `init_signer` and the same manifest the render hook writes (lineage assertion,
c2pa.created). Prints per-file signing cost and the ratio (signed / unsigned render time).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from statistics import median

from backlot.generation.loading import clear_cache
from backlot.generation.rendering import RenderPlan, RenderSettings, render_frames
from backlot.generation.tiny import build_tiny_pipeline
from backlot.provenance import init_signer, load_signer
from backlot.provenance.credentials import _context, backlot_version, manifest_for, mime_type, sign_stream
from tests.benchmarks.bench_generation import fake_version


def sign_all(files: list[Path], signer, lineage: dict, out: Path) -> dict[str, list[float]]:
    """Sign each file as sign_version does (stream in, signed copy out); seconds per file kind."""
    context = _context()
    times: dict[str, list[float]] = {"frame": [], "mp4": [], "thumbnail": []}
    for i, path in enumerate(files):
        mime = mime_type(path.name)
        kind = "mp4" if path.suffix == ".mp4" else "thumbnail" if path.name == "thumbnail.png" else "frame"
        start = time.perf_counter()
        with open(path, "rb") as src, open(out / f"{i}{path.suffix}", "w+b") as dst:
            sign_stream(manifest_for(lineage, path.name, "0" * 64, mime), mime, src, dst, signer, context)
        times[kind].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        base = build_tiny_pipeline(tmp / "tiny", seed=0)
        signer = load_signer(init_signer(tmp / "signer", organisation="Bench").folder)
        lineage = {"generator": {"name": "Backlot", "version": backlot_version()}, "ref": "bench/shots/sh010/main@1",
                   "kind": "shot_render", "content_hash": "0" * 64, "recipe_sha256": "0" * 64,
                   "base_model": {"ref": "bench/models/tiny@1", "content_hash": "0" * 64},
                   "adapters": [], "continuity": None, "regenerated_from": None}
        plan = RenderPlan(RenderSettings(prompt="mara walks", steps=args.steps), 1001, args.frames, Fraction(24),
                          fake_version(1, base, "base"), [], None)
        clear_cache()
        render_frames(plan, tmp / "warm")  # model load outside the timing, as a worker holds it
        plain, signed, per_file = [], [], {"frame": [], "mp4": [], "thumbnail": []}
        for r in range(args.rounds):  # interleaved: both sides see the same machine load
            start = time.perf_counter()
            render_frames(plan, tmp / f"plain{r}")
            plain.append(time.perf_counter() - start)
            start = time.perf_counter()
            files, _ = render_frames(plan, tmp / f"signed{r}")
            (tmp / f"out{r}").mkdir()
            times = sign_all(files, signer, lineage, tmp / f"out{r}")
            signed.append(time.perf_counter() - start)
            for kind, values in times.items():
                per_file[kind] += values
        size = {p.suffix: p.stat().st_size for p in files}
    render, total = median(plain), median(signed)
    print(f"tiny model, {args.frames} frames of 64x64, {args.steps} steps, {args.rounds} rounds (medians)")
    print(f"render without signing: {render:.3f} s; with signing: {total:.3f} s; ratio {total / render:.3f}")
    signing = sum(sum(v) for v in per_file.values()) / args.rounds
    print(f"signing alone: {signing * 1000:.1f} ms per render; (render + signing) / render = "
          f"{(render + signing) / render:.3f} (the goal: <= 1.05; the wall-clock ratio above carries the machine's noise)")
    for kind, values in per_file.items():
        print(f"  sign one {kind}: {median(values) * 1000:.2f} ms")
    print(f"  file sizes: png {size.get('.png')} B, mp4 {size.get('.mp4')} B")


if __name__ == "__main__":
    main()
