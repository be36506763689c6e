"""Where generation runs, and the facts about it that change the bytes it makes.

CPU by default. With a CUDA GPU: bf16 (fp16 where bf16 is unsupported), PyTorch's
scaled-dot-product attention (diffusers' default attention processor on torch 2), and
`torch.compile` of the UNet when BACKLOT_TORCH_COMPILE=1. `BACKLOT_DEVICE` forces a device
(`cpu`, `cuda`, `cuda:1`). The device class (kind, GPU name, dtype) goes into every recipe:
reproduction is promised on the same device class.

On CUDA, cuDNN is pinned to deterministic algorithms without autotuning and cuBLAS to a
fixed workspace (both measured free on an H200: tests/benchmarks/bench_cuda_determinism.py).
PyTorch's global `use_deterministic_algorithms` is not set: it made renders 1.9x slower and
did not change their bytes. BACKLOT_CUDA_DETERMINISTIC=0 drops the pinning, and the device
class says so (`.../nondeterministic`), so such a version is never expected to reproduce.
"""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass
from importlib import metadata

LIBRARIES = ("torch", "diffusers", "transformers", "peft", "safetensors", "numpy", "pillow", "av")


@dataclass(frozen=True)
class Device:
    name: str  # torch device string
    dtype: str  # "float32", "bfloat16", "float16"
    compile: bool
    threads: int
    deterministic: bool = True

    @property
    def device_class(self) -> str:
        if self.name.startswith("cuda"):
            import torch

            name = f"cuda/{torch.cuda.get_device_name(torch.device(self.name))}/{self.dtype}"
            return name if self.deterministic else f"{name}/nondeterministic"
        return f"cpu/{platform.machine()}/{self.dtype}"

    def torch_dtype(self):
        import torch

        return getattr(torch, self.dtype)


def let_idle_threads_sleep() -> None:
    """Make OpenMP threads sleep when idle instead of spinning; call before torch is imported.

    PyTorch's CPU kernels run in OpenMP teams whose idle threads spin by default. With one
    other CPU-bound process on the machine, each small kernel then waits for a teammate that
    lost its core: a tiny-model render went from 0.6 s to 16 s on 2 cores. Sleeping threads
    keep it at ~1.2 s. The wait policy never changes the bytes computed (checked in
    tests/generation), so it is not part of the recipe; OMP_WAIT_POLICY set by the user wins.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def pick_device() -> Device:
    import torch

    wanted = os.environ.get("BACKLOT_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    threads = int(os.environ.get("BACKLOT_TORCH_THREADS") or torch.get_num_threads())
    torch.set_num_threads(threads)
    if wanted.startswith("cuda"):
        dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        deterministic = os.environ.get("BACKLOT_CUDA_DETERMINISTIC", "1") != "0"
        if deterministic:
            _pin_cuda_kernels()
        return Device(wanted, dtype, os.environ.get("BACKLOT_TORCH_COMPILE") == "1", threads, deterministic)
    return Device("cpu", "float32", False, threads)


def _pin_cuda_kernels() -> None:
    import torch

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when cuBLAS first starts
    torch.backends.cudnn.benchmark = False  # autotuning may pick another algorithm next time
    torch.backends.cudnn.deterministic = True


def library_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0]}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def quiet_libraries() -> None:
    """Silence download hints and per-step progress bars from diffusers/transformers."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    import warnings

    warnings.filterwarnings("ignore", message=".*torchvision.*")
    # Several adapters in one pipeline is how adapters are swapped without a reload (loading.py).
    warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute", category=UserWarning)
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
