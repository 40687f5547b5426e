"""Pick bf16 where the hardware runs it fast, fp32 otherwise.

On CPUs with bf16 matrix units (AMX or avx512_bf16) bf16 matmuls run several times
faster than fp32 with the same results to a few decimals; elsewhere bf16 is emulated
and slower, so `auto` only chooses it where it pays. On a CUDA GPU `auto` is bf16 where the
GPU supports it (Ampere and later), fp32 on older ones.

Example:
    >>> resolve_dtype("fp32")
    torch.float32
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch


BF16_FLAGS = ("amx_bf16", "avx512_bf16")


@functools.cache
def cpu_bf16_flags() -> tuple[str, ...]:
    """The CPU's bf16 matrix-unit flags (from /proc/cpuinfo; empty where there are none or it cannot be read)."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return ()
    return tuple(f for f in BF16_FLAGS if f in flags)


def cpu_has_bf16() -> bool:
    return bool(cpu_bf16_flags())


def bf16_available(device: str | None = None) -> bool:
    """Whether bf16 runs fast on `device` ('cpu', 'cuda:N'; None: the GPU if torch sees one, else the CPU)."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return cpu_has_bf16()


def resolve_dtype(precision: str, device: str | None = None) -> torch.dtype:
    """Map the config's `precision` (auto | bf16 | fp32) to a torch dtype for `device` (see bf16_available)."""
    if precision == "fp32":
        return torch.float32
    if precision == "bf16":
        return torch.bfloat16
    if precision == "auto":
        return torch.bfloat16 if bf16_available(device) else torch.float32
    raise ValueError(f"precision must be auto, bf16 or fp32, got {precision!r}")


def describe(precision: str, dtype: torch.dtype | None = None) -> str:
    """What `precision` ran as, and why, for logs and the `serve` startup line.

    Example:
        >>> describe("fp32")
        'fp32'
    """
    name = {torch.bfloat16: "bf16", torch.float32: "fp32"}.get(dtype or resolve_dtype(precision), str(dtype))
    if precision != "auto":
        return name
    why = "cuda" if torch.cuda.is_available() else (", ".join(cpu_bf16_flags()) or "no CPU bf16 units")
    return f"{name} (auto: {why})"


def dtype_name(dtype: torch.dtype) -> str:
    """'bf16', 'fp16' or 'fp32': how metadata and startup lines name a precision."""
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32")
