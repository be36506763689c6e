"""Benchmark: what CUDA determinism costs, and where run-to-run differences come from.

    BACKLOT_DEVICE=cuda python -m tests.benchmarks.bench_cuda_determinism [--mode all]

Builds an SD 1.5-shaped pipeline in memory (seeded random weights, bf16) and, for each
mode, in a fresh process: renders the same 512x512 frame N times with one seed and
reports seconds per frame and whether the outputs, the UNet's latents alone and a VAE
decode alone were identical across calls (first call against later ones).
Modes: `free` (no pinning), `cudnn` (cuDNN deterministic, no autotuning), `strict`
(plus torch.use_deterministic_algorithms and a fixed cuBLAS workspace: what Backlot does).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

MODES = ("free", "cudnn", "strict")


def check_backlot_renders(frames: int, steps: int, tiny: bool = False) -> None:
    """Backlot's own render path (adapter, img2img chain, files) three times: which parts repeat?"""
    import tempfile
    from fractions import Fraction
    from pathlib import Path

    import numpy as np
    import torch
    from PIL import Image

    from backlot.generation.loading import activate_adapters, load_pipeline
    from backlot.generation.rendering import RenderPlan, RenderSettings, render_frames
    from backlot.generation.training import TrainSettings, run_training
    from tests.benchmarks.bench_generation import build_sd15_sized, fake_version

    from backlot.generation.tiny import build_tiny_pipeline

    tmp = Path(tempfile.mkdtemp())
    size = 64 if tiny else 512
    base = build_tiny_pipeline(tmp / "tiny") if tiny else build_sd15_sized(tmp / "sd15")
    art = tmp / "art.png"
    Image.fromarray((np.random.default_rng(0).random((size, size, 3)) * 255).astype("uint8")).save(art)
    adapter = run_training(base, [art], ["mara"], TrainSettings(steps=3, resolution=size), tmp / "ad").folder
    plan = RenderPlan(RenderSettings(prompt="mara walks", steps=steps, seed=0, width=size, height=size), 1001, frames,
                      Fraction(24), fake_version(1, base, "base"), [(fake_version(2, adapter, "adapter"), 1.0)], None)
    runs = []
    for r in range(3):
        files, _ = render_frames(plan, tmp / f"r{r}")
        runs.append([f.read_bytes() for f in files if f.suffix == ".png" and "frame." in f.name])
    for r in (1, 2):
        print(f"backlot render {r + 1} vs 1, per frame equal:", [a == b for a, b in zip(runs[0], runs[r])])
    loaded = load_pipeline(plan.base_model.content_hash, base)
    for label, adapters in (("no adapter", []), ("adapter", [("lora_" + "0" * 63 + "2", adapter, 1.0)])):
        activate_adapters(loaded, adapters)
        t2i = [loaded.text2img("mara walks", height=size, width=size, num_inference_steps=steps, output_type="latent",
                               generator=torch.Generator().manual_seed(0)).images for _ in range(3)]
        first = Image.open(tmp / "r0" / "frames" / "frame.1001.png")
        i2i = [loaded.img2img("mara walks", image=first, strength=0.5, num_inference_steps=steps, output_type="latent",
                              generator=torch.Generator().manual_seed(1)).images for _ in range(3)]
        print(f"{label}: text2img latents equal", [torch.equal(t2i[0], x) for x in t2i[1:]],
              "img2img latents equal", [torch.equal(i2i[0], x) for x in i2i[1:]])


def run_mode(mode: str, renders: int, steps: int) -> dict:
    import torch

    if mode in ("cudnn", "strict"):
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    if mode == "strict":
        torch.use_deterministic_algorithms(True, warn_only=True)
    from tests.benchmarks.bench_generation import build_sd15_sized
    import tempfile
    from pathlib import Path
    from diffusers import StableDiffusionPipeline

    folder = build_sd15_sized(Path(tempfile.mkdtemp()) / "sd15")
    device = "cuda" if torch.cuda.is_available() else "cpu"  # cpu: only to check the script runs
    pipe = StableDiffusionPipeline.from_pretrained(folder, dtype=torch.bfloat16, local_files_only=True).to(device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    pipe.set_progress_bar_config(disable=True)

    def latents():
        return pipe("mara walks", height=512, width=512, num_inference_steps=steps, output_type="latent",
                    generator=torch.Generator().manual_seed(0)).images

    outs, times = [], []
    for _ in range(renders):
        sync()
        started = time.perf_counter()
        outs.append(latents())
        sync()
        times.append(time.perf_counter() - started)
    with torch.no_grad():
        decoded = [pipe.vae.decode(outs[0] / pipe.vae.config.scaling_factor).sample for _ in range(3)]
    return {"mode": mode, "s_per_frame_after_first": sum(times[1:]) / max(len(times) - 1, 1),
            "first_s": times[0],
            "latents_equal_first_vs_rest": all(torch.equal(outs[0], o) for o in outs[1:]),
            "latents_equal_among_rest": all(torch.equal(outs[1], o) for o in outs[2:]),
            "max_abs_diff_first_vs_second": float((outs[0].float() - outs[1].float()).abs().max()),
            "vae_decode_equal": all(torch.equal(decoded[0], d) for d in decoded[1:])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", default="all", choices=("all", *MODES))
    parser.add_argument("--renders", type=int, default=4)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--backlot", action="store_true", help="check Backlot's render path instead")
    parser.add_argument("--tiny", action="store_true", help="with --backlot: the tiny model (a quick CPU check)")
    args = parser.parse_args()
    if args.backlot:
        from backlot.generation.device import pick_device

        pick_device()  # the pinning Backlot applies
        check_backlot_renders(frames=3, steps=args.steps, tiny=args.tiny)
        return
    if args.mode != "all":
        print(json.dumps(run_mode(args.mode, args.renders, args.steps)))
        return
    results = []
    for mode in MODES:  # a fresh process each: the settings are global and sticky
        env = dict(os.environ, CUBLAS_WORKSPACE_CONFIG=":4096:8") if mode == "strict" else dict(os.environ)
        out = subprocess.run([sys.executable, "-m", __spec__.name, "--mode", mode, "--renders", str(args.renders),
                              "--steps", str(args.steps)], env=env, capture_output=True, text=True)
        lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
        results.append(json.loads(lines[-1]) if lines else {"mode": mode, "error": out.stderr[-800:]})
    base = results[0].get("s_per_frame_after_first")
    print(f"{'mode':<8} {'s/frame':>8} {'vs free':>8} {'first s':>8}  latents equal (first/rest, rest)  "
          f"max diff  vae equal")
    for r in results:
        if "error" in r:
            print(f"{r['mode']:<8} failed: {r['error']}")
            continue
        print(f"{r['mode']:<8} {r['s_per_frame_after_first']:>8.3f} {r['s_per_frame_after_first'] / base:>8.2f} "
              f"{r['first_s']:>8.2f}  {str(r['latents_equal_first_vs_rest']):>5} / "
              f"{str(r['latents_equal_among_rest']):<5}  {r['max_abs_diff_first_vs_second']:>9.3g}  "
              f"{r['vae_decode_equal']}")


if __name__ == "__main__":
    main()
