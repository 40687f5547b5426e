"""A quantized base model (QLoRA): 8-bit or 4-bit NF4 weights through bitsandbytes.

An 8B base takes about 16 GB in bf16 before any activation; in 4-bit NF4 with double
quantization (the QLoRA recipe) about 5 GB, so it trains on one 24 GB GPU. Only the frozen
base is quantized: the LoRA weights and their optimizer state stay in full precision
(peft's `prepare_model_for_kbit_training`). bitsandbytes needs a CUDA GPU and is an
optional extra (`pip install 'ragtune[gpu]'`); asking for a quantized base where it cannot
run fails before any model is loaded, saying what to set instead.

Example:
    >>> bnb_config("none", "cpu") is None
    True
    >>> bnb_config("4bit", "cpu")
    Traceback (most recent call last):
    ...
    framework.runtime.quantization.QuantizationError: finetune.quantization: 4bit needs a CUDA GPU ...
"""

from __future__ import annotations

import importlib.util

import torch

QUANTIZATIONS = ("none", "8bit", "4bit")


class QuantizationError(ValueError):
    """A quantized base was asked for where bitsandbytes cannot run it."""


def check_quantization(mode: str, device: str, *, key: str = "finetune.quantization",
                       bnb_installed: bool | None = None) -> None:
    """Raise QuantizationError when `mode` cannot run on `device` here (no CUDA, or no bitsandbytes)."""
    if mode not in QUANTIZATIONS:
        raise QuantizationError(f"{key}: {mode!r} is not one of {', '.join(QUANTIZATIONS)}")
    if mode == "none":
        return
    if not device.startswith("cuda"):
        raise QuantizationError(
            f"{key}: {mode} needs a CUDA GPU (bitsandbytes quantizes on the GPU) and this run is on {device}. "
            f"Set {key}: none here (finetune.base_precision: bf16 halves the base's memory on a CPU with bf16 "
            "units), or run on a GPU machine with runtime.device: auto")
    installed = importlib.util.find_spec("bitsandbytes") is not None if bnb_installed is None else bnb_installed
    if not installed:
        raise QuantizationError(f"{key}: {mode} needs the bitsandbytes package: pip install 'ragtune[gpu]' "
                                f"(or pip install bitsandbytes), or set {key}: none")


def bnb_config(mode: str, device: str, *, compute_dtype: torch.dtype = torch.bfloat16, key: str = "finetune.quantization"):
    """transformers' BitsAndBytesConfig for `mode` (None for `none`): 4bit is NF4 with double quantization
    and `compute_dtype` matmuls (QLoRA); 8bit is LLM.int8()."""
    check_quantization(mode, device, key=key)
    if mode == "none":
        return None
    from transformers import BitsAndBytesConfig

    if mode == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute_dtype)


def weights_label(mode: str, dtype: torch.dtype) -> str:
    """How metadata names the base weights: 'bf16', 'fp32', '8bit' or '4bit-nf4'."""
    from framework.runtime.precision import dtype_name

    return {"8bit": "8bit", "4bit": "4bit-nf4"}.get(mode, dtype_name(dtype))
