"""Load a causal LM where `runtime.device` says, in the precision and quantization config asks for.

Serving and training load the base the same way, so an adapter trained on a 4-bit base
serves on the same 4-bit base, and both pick the same attention kernel
(framework.runtime.device.attention_implementation).

Example:
    >>> model = load_causal_lm(path, dtype=torch.bfloat16, device="cuda:0", quantization="4bit")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from framework.runtime.device import attention_implementation
from framework.runtime.quantization import bnb_config

log = logging.getLogger(__name__)


def load_causal_lm(model_dir: Path, *, dtype: torch.dtype, device: str = "cpu", quantization: str = "none",
                   key: str = "finetune.quantization"):
    """The model in `model_dir` on `device`: weights in `dtype`, or 8-bit / 4-bit NF4 (then `dtype` is the
    compute dtype). Raises QuantizationError before loading when the quantization cannot run here."""
    from transformers import AutoModelForCausalLM

    quant = bnb_config(quantization, device, compute_dtype=dtype if dtype != torch.float32 else torch.float32, key=key)
    attn = attention_implementation(device, dtype=dtype)
    kwargs = {"dtype": dtype, "local_files_only": True, "attn_implementation": attn}
    if quant is not None:  # bitsandbytes places the quantized weights itself
        model = AutoModelForCausalLM.from_pretrained(model_dir, quantization_config=quant, device_map={"": device},
                                                     **kwargs)
    else:
        model = AutoModelForCausalLM.from_pretrained(model_dir, **kwargs)
        if device != "cpu":
            model.to(device)
    log.info("loaded %s on %s (%s, attention %s, quantization %s)", Path(model_dir).name, device,
             str(dtype).removeprefix("torch."), attn, quantization)
    return model
