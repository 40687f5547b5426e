"""Which device the models run on: `runtime.device` resolved once, the same way everywhere.

`auto` is the first CUDA GPU torch sees, else the CPU; `cuda` is the current GPU (the
one a launcher such as `accelerate launch` assigned to this process, else GPU 0);
`cuda:N` is GPU N and fails with a clear message when the machine has fewer GPUs. The
generator, the embedder, the reranker and training all place their model on the device
`resolve_device` returns, so a GPU machine never answers on its CPU next to an idle GPU.

The attention kernel follows the device: FlashAttention 2 on a CUDA GPU when the
`flash-attn` package is installed and the weights are 16-bit, PyTorch's
scaled-dot-product attention (`sdpa`) otherwise.

Example:
    >>> resolve_device("auto", cuda_available=False)
    'cpu'
    >>> resolve_device("cuda:1", cuda_available=True, count=2)
    'cuda:1'
    >>> attention_implementation("cpu", flash_installed=True)
    'sdpa'
"""

from __future__ import annotations

import importlib.util
import os
import re

_SPEC = re.compile(r"^(auto|cpu|cuda)(:([0-9]+))?$")
_process_device: str | None = None  # what configure_runtime resolved for this process


class DeviceError(ValueError):
    """`runtime.device` names a device this machine does not have."""


def resolve_device(spec: str = "auto", *, cuda_available: bool | None = None, count: int | None = None,
                   key: str = "runtime.device") -> str:
    """`auto | cpu | cuda | cuda:N` to a torch device string ('cpu' or 'cuda:N').

    `cuda_available` and `count` default to what torch sees; a test passes them to drive every case.
    """
    match = _SPEC.match(spec.strip().lower())
    if match is None or (match.group(1) != "cuda" and match.group(2)):
        raise DeviceError(f"{key}: {spec!r} is not a device; write auto, cpu, cuda or cuda:N (N = GPU index)")
    kind, index = match.group(1), match.group(3)
    if cuda_available is None or count is None:
        import torch

        cuda_available = torch.cuda.is_available() if cuda_available is None else cuda_available
        count = (torch.cuda.device_count() if cuda_available else 0) if count is None else count
    if kind == "cpu":
        return "cpu"
    if kind == "auto":
        return f"cuda:{_current_index()}" if cuda_available and count else "cpu"
    if not cuda_available or not count:
        raise DeviceError(f"{key}: {spec!r} asks for a CUDA GPU but torch sees none on this machine (no driver, a "
                          "CPU-only torch build, or CUDA_VISIBLE_DEVICES is empty); set runtime.device: cpu or auto")
    n = int(index) if index is not None else _current_index()
    if n >= count:
        raise DeviceError(f"{key}: {spec!r} asks for GPU {n} but this machine has {count} "
                          f"(cuda:0 to cuda:{count - 1}); pick one of those or set runtime.device: auto")
    return f"cuda:{n}"


def _current_index() -> int:
    """The GPU a launcher gave this process (LOCAL_RANK under accelerate/torchrun), else 0."""
    local = os.environ.get("LOCAL_RANK", "")
    return int(local) if local.isdigit() else 0


def is_cuda(device: str) -> bool:
    return device.startswith("cuda")


def flash_attention_installed() -> bool:
    return importlib.util.find_spec("flash_attn") is not None


def attention_implementation(device: str, *, dtype=None, flash_installed: bool | None = None) -> str:
    """`flash_attention_2` on a CUDA GPU with 16-bit weights when flash-attn is installed, else `sdpa`."""
    import torch

    flash = flash_attention_installed() if flash_installed is None else flash_installed
    sixteen_bit = dtype is None or dtype in (torch.bfloat16, torch.float16)
    return "flash_attention_2" if flash and is_cuda(device) and sixteen_bit else "sdpa"


def device_memory_bytes(device: str) -> int:
    """What the device can hold: a GPU's total memory, or the RAM available now on a CPU."""
    if is_cuda(device):
        import torch

        return int(torch.cuda.get_device_properties(int(device.split(":")[1])).total_memory)
    return available_ram_bytes()


def available_ram_bytes() -> int:
    """MemAvailable of /proc/meminfo (what can be allocated without swapping), else total RAM."""
    try:
        for line in open("/proc/meminfo", encoding="ascii"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def peak_resident_bytes() -> int:
    """The most memory this process has held resident so far (ru_maxrss: KiB on Linux, bytes on macOS)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def describe_device(device: str) -> str:
    """'cpu' or 'cuda:0 (NVIDIA H100 80GB HBM3)' for startup lines and metadata."""
    if not is_cuda(device):
        return device
    import torch

    return f"{device} ({torch.cuda.get_device_name(int(device.split(':')[1]))})"


def configure_runtime(runtime) -> str:
    """Apply config's `runtime` section to this process: torch's threads (framework.runtime.threads) and the
    device every model is placed on, which `default_device()` returns from then on. Returns the device."""
    global _process_device
    from framework.runtime.threads import configure_threads

    configure_threads(runtime.threads)
    _process_device = resolve_device(runtime.device)
    return _process_device


def default_device() -> str:
    """The device `configure_runtime` chose for this process, else `auto` resolved now."""
    return _process_device or resolve_device("auto")


def return_freed_memory() -> None:
    """Give memory Python and torch freed back to the OS: glibc keeps freed heap pages for reuse, so a process that
    trained keeps its training peak resident through what it does next (evaluation). CUDA: empties torch's cache."""
    import ctypes
    import ctypes.util

    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is not None and hasattr(libc, "malloc_trim"):
            libc.malloc_trim(0)
    except OSError:  # not glibc: nothing to trim
        pass
