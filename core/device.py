"""Which torch device a name means ("auto" picks CUDA, then MPS, then the CPU), and which
precision the model computes in there.

Precision: "fp32", "bf16" (bf16 autocast: matrix products and convolutions in bf16, norms,
softmax and every sampler and optimizer update in fp32), or "auto": on a GPU, bf16 where it
computes bf16 natively; on a CPU that reports native bf16, whichever of the two times faster for
the work at hand (core.autotune: the flags alone cannot tell a host where bf16 is 2x faster from
one where it is 0.7x); fp32 elsewhere.
"""

from __future__ import annotations

import contextlib
import platform
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # torch loads when a function runs: the app's first frame and --help read PRECISIONS
    import torch

    from .autotune import PrecisionDecision

PRECISIONS = ("auto", "bf16", "fp32")


def pick_device(name: str = "auto") -> torch.device:
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda asked for, but no CUDA GPU is available")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device mps asked for, but MPS is not available")
    return device


def check_precision(name: str) -> str:
    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {name!r}")
    return name


def native_bf16(device: torch.device) -> tuple[bool, str]:
    """(whether `device` computes bf16 natively, why in a few words)."""
    import torch

    if device.type == "cuda":
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return True, f"{torch.cuda.get_device_name(device)} computes bf16 natively"
        return False, f"{torch.cuda.get_device_name(device)} has no native bf16"
    if device.type != "cpu":
        return False, f"bf16 autocast is not used on {device.type}"
    if platform.machine().lower() in ("x86_64", "amd64", "i386", "i686"):
        # oneDNN also reports bf16 on AVX-512 CPUs that only emulate it (slower than fp32 there):
        # ask for the instructions themselves, AVX512-BF16 or AMX
        if getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)():
            return True, "this CPU has AMX (native bf16 matrix tiles)"
        if getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)():
            return True, "this CPU has AVX512-BF16 (native bf16 dot products)"
        return False, "this CPU has no native bf16 (no AVX512-BF16 or AMX)"
    supported = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return (True, "oneDNN reports native bf16 on this CPU") if supported else (False, "oneDNN reports no bf16 on this CPU")


def resolve_precision(name: str, device: torch.device,
                      measure: Callable[[], PrecisionDecision] | None = None) -> tuple[str, str]:
    """("bf16" or "fp32", why): the precision `name` means on `device`. measure: times the work at
    hand in both (core.autotune), asked only on a CPU with native bf16; without it such a CPU gets
    bf16 on the flags' word."""
    check_precision(name)
    if name != "auto":
        return name, "asked for"
    native, why = native_bf16(device)
    if native and device.type == "cpu" and measure is not None:
        decision = measure()
        return decision.precision, decision.describe()
    return ("bf16" if native else "fp32"), f"auto: {why}"


def autocast(precision: str, device: torch.device):
    """The context a model call runs under at `precision` ("bf16" or "fp32") on `device`."""
    import torch

    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
