"""Which numeric settings are fastest on this machine without costing quality (issue: the fastest honest path).

What each default is chosen on is measured, with the command, in docs/BENCHMARKS.md (rendered from the JSON the
measurement wrote): bf16 autocast against fp32 (speed and test metrics), channels-last conv weights, and
torch.compile over runs of a few epochs (off by default). On CUDA, bf16 autocast needs
Ampere or newer (compute capability ≥ 8.0).

``trainer.precision: ${aelab.precision:${trainer.accelerator}}`` resolves through :func:`auto_precision`;
any explicit ``trainer.precision=...`` override wins.
"""

from __future__ import annotations

import platform
from pathlib import Path

import torch


def cpu_supports_bf16() -> bool:
    """True when the CPU has native bf16 arithmetic (AVX-512 BF16 or AMX-BF16), which torch's CPU autocast
    kernels (oneDNN) use; without it bf16 is emulated and slower than fp32."""
    caps = getattr(torch.cpu, "get_capabilities", None)
    if caps is not None:
        try:
            c = caps()
            return bool(c.get("avx512_bf16") or c.get("amx_bf16"))
        except Exception:  # noqa: BLE001 - an older torch: fall back to the private probes
            pass
    probes = [getattr(torch.cpu, n, None) for n in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(p() for p in probes if p is not None)


def cuda_supports_bf16() -> bool:
    """True on an Ampere-or-newer CUDA GPU (compute capability ≥ 8.0), where bf16 runs on tensor cores."""
    return torch.cuda.is_available() and torch.cuda.get_device_capability()[0] >= 8


def device_name(device: torch.device | str | None = None) -> str:
    """The device as the reports name it: the GPU's name, or ``CPU (<model>, <machine>, <threads> threads)``
    (the model from ``/proc/cpuinfo`` where there is one; the threads are torch's intra-op threads)."""
    device = (
        torch.device(device)
        if device is not None
        else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    )
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = _cpu_model()
    threads = torch.get_num_threads()
    return (
        f"CPU ({model + ', ' if model else ''}{platform.machine()}, {threads} thread{'s' * (threads != 1)})"
    )


def _cpu_model() -> str:
    """The CPU's ``model name`` from ``/proc/cpuinfo`` (Linux), or ``platform.processor()``, or ``""``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def resolve_accelerator(accelerator: str) -> str:
    """``auto`` → ``gpu`` when CUDA is available, else ``cpu``; other values as given."""
    if accelerator in ("auto", None):
        return "gpu" if torch.cuda.is_available() else "cpu"
    return "gpu" if accelerator == "cuda" else str(accelerator)


def auto_precision(accelerator: str = "auto") -> str:
    """Lightning's ``precision`` for ``accelerator``: ``bf16-mixed`` where the device computes in bf16
    natively (see :func:`cpu_supports_bf16`, :func:`cuda_supports_bf16`), else ``32-true``."""
    acc = resolve_accelerator(accelerator)
    if acc == "gpu":
        return "bf16-mixed" if cuda_supports_bf16() else "32-true"
    if acc == "cpu":
        return "bf16-mixed" if cpu_supports_bf16() else "32-true"
    return "32-true"
