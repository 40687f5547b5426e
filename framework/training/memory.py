"""How much memory a LoRA run will take, before it starts, and whether the device has it.

The estimate adds what a training step holds at its peak, from the base model's shape
(config.json) and the finetune settings, never by loading the model:

- the frozen base weights: 4 bytes a parameter in fp32, 2 in bf16, about 1 in 8-bit and
  0.53 in 4-bit NF4 with double quantization (embeddings and the output layer stay 16-bit);
- the LoRA weights, their gradients and AdamW's two moments, all fp32 (16 bytes each);
- activations kept for the backward pass, for the largest batch this run is likely to see
  (its batches drawn in random orders as the Trainer draws them; packed: the examples'
  tokens end to end; padded: `batch_size` x the batch's longest): per
  token and layer the inputs of every linear layer, the LoRA dropout copies, the MLP's
  intermediate values and, where the attention kernel materializes it, the attention
  matrix (only the `eager` kernel does; SDPA and FlashAttention do not); with gradient
  checkpointing only each layer's input is kept, plus one layer's worth while it is recomputed;
- the logits, only at the answer positions (framework.training.lora), in fp32, with their
  softmax and gradient;
- on a CPU, the process itself (Python, torch and the libraries, about 0.65 GB resident),
  since CPU memory is what the comparison is against; a GPU adds its CUDA context (about
  0.5 GB) outside `torch.cuda.max_memory_allocated`, which the figure is compared with.

The result is compared with the device's memory (a GPU's total, or the RAM available now on
a CPU), and when it does not fit the estimate names the settings that would make it fit.
Measured against the real run: docs/guides/training.md, Memory.

Example:
    >>> shape = ModelShape(hidden=576, intermediate=1536, layers=30, heads=9, kv_heads=3, head_dim=64,
    ...                    vocab=49152, tied_embeddings=True)
    >>> round(shape.parameters / 1e6)
    135
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Sequence

from framework.config import FinetuneConfig

GB = 1024**3
CPU_RUNTIME_BYTES = int(0.65 * GB)  # python + torch + transformers + peft resident besides the model (measured here)
# The autograd graph keeps more than the inputs of each matmul (casts, norms, rotary embeddings, SiLU, masks):
# measured on a CPU, a scaled-down SmolLM2 shape kept 2.2x the elements counted below, in bf16 and fp32 alike
# (docs/guides/training.md, Memory). Not yet measured on a GPU: tests/benchmarks/gpu_check.py prints both.
ACTIVATION_FACTOR = 2.2
BYTES_PER_PARAM = {"fp32": 4.0, "bf16": 2.0, "8bit": 1.0, "4bit": 0.53}
LINEAR_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs of a decoder-only transformer (Llama, Mistral, Qwen, SmolLM: gated MLP, GQA)."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied_embeddings: bool = False

    @classmethod
    def from_config(cls, model_dir: Path) -> "ModelShape":
        c = json.loads((Path(model_dir) / "config.json").read_text())
        c = c.get("text_config", c)
        heads = c["num_attention_heads"]
        return cls(hidden=c["hidden_size"], intermediate=c["intermediate_size"], layers=c["num_hidden_layers"],
                   heads=heads, kv_heads=c.get("num_key_value_heads") or heads,
                   head_dim=c.get("head_dim") or c["hidden_size"] // heads, vocab=c["vocab_size"],
                   tied_embeddings=bool(c.get("tie_word_embeddings", False)))

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in, out) of each linear layer in one transformer block."""
        h, q, kv, i = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim, self.intermediate
        return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
                "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}

    @property
    def layer_linear_parameters(self) -> int:
        return sum(a * b for a, b in self.linear_shapes().values())

    @property
    def embedding_parameters(self) -> int:
        return self.vocab * self.hidden * (1 if self.tied_embeddings else 2)

    @property
    def parameters(self) -> int:
        return self.layers * (self.layer_linear_parameters + 2 * self.hidden) + self.embedding_parameters + self.hidden


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes of each part at the peak of a training step, and the verdict against the device."""

    device: str
    device_bytes: int
    weights: str  # fp32 | bf16 | 8bit | 4bit
    tokens_per_step: int
    base_bytes: int
    lora_bytes: int  # LoRA weights + gradients + AdamW state
    activation_bytes: int
    checkpointed_activation_bytes: int
    logits_bytes: int
    runtime_bytes: int
    checkpointing: bool
    suggestions: list[str] = field(default_factory=list)

    def _total(self, checkpointing: bool) -> int:
        act = self.checkpointed_activation_bytes if checkpointing else self.activation_bytes
        return self.base_bytes + self.lora_bytes + act + self.logits_bytes + self.runtime_bytes

    @property
    def total_bytes(self) -> int:
        return self._total(self.checkpointing)

    @property
    def fits(self) -> bool:
        return self._total(self.checkpointing) <= self.device_bytes

    @property
    def fits_with_checkpointing(self) -> bool:
        return self._total(True) <= self.device_bytes

    @property
    def total_gb(self) -> float:
        return self.total_bytes / GB

    @property
    def total_with_checkpointing_gb(self) -> float:
        return self._total(True) / GB

    @property
    def device_gb(self) -> float:
        return self.device_bytes / GB

    def describe(self) -> str:
        g = lambda b: f"{b / GB:.2f} GB"  # noqa: E731
        lines = [f"memory estimate on {self.device} ({g(self.device_bytes)} "
                 f"{'total' if self.device.startswith('cuda') else 'available'}): about {g(self.total_bytes)} at peak "
                 f"-> {'fits' if self.fits else 'does NOT fit'}",
                 f"  base weights ({self.weights}) {g(self.base_bytes)}; LoRA weights, gradients and AdamW state "
                 f"{g(self.lora_bytes)}; logits at answer positions {g(self.logits_bytes)}"
                 + (f"; process {g(self.runtime_bytes)}" if self.runtime_bytes else ""),
                 f"  activations for {self.tokens_per_step:,} tokens per step: {g(self.activation_bytes)} without "
                 f"gradient checkpointing, {g(self.checkpointed_activation_bytes)} with it "
                 f"({'on' if self.checkpointing else 'off'})"]
        lines += [f"  to fit: {s}" for s in self.suggestions]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {**asdict(self), "total_bytes": self.total_bytes, "fits": self.fits}


def step_tokens(lengths: Sequence[int], batch_size: int, *, packing: bool, epochs: float = 1.0, seed: int = 0) -> int:
    """Tokens in the largest batch this run is likely to see. The Trainer draws batches in a random order each
    epoch, so the batch of the `batch_size` longest examples together is rare; this draws the run's batches in
    several random orders (16 runs' worth, fewer for a large set) and takes the largest batch of all of them:
    packed, the examples' tokens end to end; padded, `batch_size` x its longest example."""
    lengths = list(lengths)
    if not lengths:
        return 0
    passes = max(1, math.ceil(epochs))
    runs = max(1, min(16, 2_000_000 // (len(lengths) * passes)))
    rng = random.Random(seed)
    largest = 0
    for _ in range(runs * passes):
        order = lengths[:]
        rng.shuffle(order)
        for i in range(0, len(order), batch_size):
            batch = order[i:i + batch_size]
            largest = max(largest, sum(batch) if packing else len(batch) * max(batch))
    return largest


def estimate_for_shape(shape: ModelShape, cfg: FinetuneConfig, *, bf16: bool, device: str, device_bytes: int,
                       lengths: Sequence[int] | None = None, answer_fraction: float = 0.3,
                       attention: str | None = None, checkpointing: bool | None = None) -> MemoryEstimate:
    """The estimate for a model of `shape` (see the module docstring). `lengths` are the tokenized examples'
    lengths (default: every example `max_length` long); `answer_fraction` the share of tokens that are answers."""
    cuda = device.startswith("cuda")
    weights = cfg.quantization if cfg.quantization != "none" else \
        ("bf16" if bf16 and (cfg.base_precision == "bf16" or cfg.quantization != "none") else "fp32")
    embed_bytes = shape.embedding_parameters * (4 if weights == "fp32" else 2)
    base = int(shape.layers * shape.layer_linear_parameters * BYTES_PER_PARAM[weights] + embed_bytes
               + (2 * shape.layers + 1) * shape.hidden * 4)
    targets = LINEAR_MODULES if cfg.target_modules == "all-linear" else \
        [m for m in LINEAR_MODULES if m in cfg.target_modules]
    lora_params = shape.layers * sum(cfg.rank * (a + b) for m, (a, b) in shape.linear_shapes().items() if m in targets)
    lora = lora_params * 16
    lengths = list(lengths) if lengths else [cfg.max_length] * cfg.batch_size
    tokens = step_tokens(lengths, cfg.batch_size, packing=cfg.packing, epochs=cfg.epochs, seed=cfg.seed)
    act = 2 if bf16 else 4  # autocast keeps matmul outputs in bf16; norms and residuals stay fp32
    h, i, kv = shape.hidden, shape.intermediate, shape.kv_heads * shape.head_dim
    q = shape.heads * shape.head_dim
    adapted_inputs = sum(1 for m in targets if m in ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj")) * h \
        + ("o_proj" in targets) * q + ("down_proj" in targets) * i  # LoRA dropout copies of each input
    kept = 3 * h + q + 2 * kv + 4 * i + (adapted_inputs if cfg.dropout else 0)
    per_token_layer = ACTIVATION_FACTOR * (act * kept + 4 * (4 * h))
    attention = attention or ("flash_attention_2" if cuda else "sdpa")
    # FlashAttention and SDPA (its fused kernels, on a CPU too: measured, packed and padded alike) keep no attention
    # matrix; the eager implementation keeps the scores and probabilities of every head, and packed examples share
    # one row, so there the matrix spans the whole step
    if attention != "eager":
        attn = 0
    else:
        blocks = [tokens] if cfg.packing else [max(lengths)] * min(cfg.batch_size, len(lengths))
        attn = 2 * 4 * shape.heads * sum(t * t for t in blocks)
    activations = int(shape.layers * (tokens * per_token_layer + attn))
    # each layer's fp32 input, plus one layer recomputed and its gradients during the backward pass
    checkpointed = int(shape.layers * tokens * h * 4 + 2 * tokens * per_token_layer + attn)
    answer_tokens = max(1, int(tokens * answer_fraction))
    logits = answer_tokens * shape.vocab * 4 * 3  # fp32 logits, log-softmax, gradient
    runtime = 0 if cuda else CPU_RUNTIME_BYTES
    est = MemoryEstimate(device=device, device_bytes=device_bytes, weights=weights, tokens_per_step=tokens,
                         base_bytes=base, lora_bytes=lora, activation_bytes=activations,
                         checkpointed_activation_bytes=checkpointed, logits_bytes=logits, runtime_bytes=runtime,
                         checkpointing=False)
    on = (not est.fits) if checkpointing is None else checkpointing  # auto: on when it does not fit without
    est = replace(est, checkpointing=on)
    return replace(est, suggestions=[] if est.fits else _suggestions(shape, cfg, est, bf16=bf16, lengths=lengths,
                                                                   answer_fraction=answer_fraction))


def _suggestions(shape: ModelShape, cfg: FinetuneConfig, est: MemoryEstimate, *, bf16: bool, lengths: list[int],
                 answer_fraction: float) -> list[str]:
    """The first settings, in order of what they cost the result, that bring the estimate under the device."""
    tries: list[tuple[str, dict]] = []
    if cfg.gradient_checkpointing is False:
        tries.append(("finetune.gradient_checkpointing: true", {"gradient_checkpointing": True}))
    if cfg.batch_size > 1:
        half = max(1, cfg.batch_size // 2)
        tries.append((f"finetune.batch_size: {half} with finetune.gradient_accumulation: "
                      f"{cfg.gradient_accumulation * cfg.batch_size // half} (same examples per step)",
                      {"batch_size": half, "gradient_accumulation": cfg.gradient_accumulation * cfg.batch_size // half,
                       "gradient_checkpointing": True}))
    if cfg.quantization == "none" and bf16 and cfg.base_precision == "fp32":
        tries.append(("finetune.base_precision: bf16", {"base_precision": "bf16", "gradient_checkpointing": True}))
    if est.device.startswith("cuda") and cfg.quantization != "4bit":
        tries.append(("finetune.quantization: 8bit" if cfg.quantization == "none" else "finetune.quantization: 4bit",
                      {"quantization": "8bit" if cfg.quantization == "none" else "4bit",
                       "gradient_checkpointing": True}))
        tries.append(("finetune.quantization: 4bit", {"quantization": "4bit", "gradient_checkpointing": True}))
    out = []
    for label, update in tries:
        alt = estimate_for_shape(shape, cfg.model_copy(update=update), bf16=bf16, device=est.device,
                                 device_bytes=est.device_bytes, lengths=lengths, answer_fraction=answer_fraction,
                                 checkpointing=True if update.get("gradient_checkpointing") else None)
        if alt.fits:
            extra = " and gradient checkpointing" if alt.checkpointing and not est.checkpointing and \
                "gradient_checkpointing" not in label else ""
            out.append(f"{label}{extra} (about {alt.total_gb:.1f} GB)")
    if not out:
        out.append("a smaller base model, or a device with more memory"
                   + (" (several GPUs: recipes/accelerate/fsdp.yaml)" if est.device.startswith("cuda") else ""))
    return out[:3]


def estimate_memory(model_dir: Path, cfg: FinetuneConfig, *, bf16: bool, device: str,
                    items: Sequence[dict] | None = None, device_bytes: int | None = None,
                    attention: str | None = None) -> MemoryEstimate:
    """The estimate for the model in `model_dir` trained with `cfg` on tokenized `items` (input_ids and labels)."""
    from framework.runtime.device import attention_implementation, device_memory_bytes

    lengths = [len(x["input_ids"]) for x in items] if items else None
    answer_fraction = 0.3
    if items:
        total = sum(len(x["labels"]) for x in items)
        answer_fraction = sum(1 for x in items for t in x["labels"] if t != -100) / max(1, total)
    checkpointing = None if cfg.gradient_checkpointing == "auto" else bool(cfg.gradient_checkpointing)
    return estimate_for_shape(ModelShape.from_config(model_dir), cfg, bf16=bf16, device=device,
                              device_bytes=device_bytes if device_bytes is not None else device_memory_bytes(device),
                              lengths=lengths, answer_fraction=answer_fraction,
                              attention=attention or attention_implementation(device), checkpointing=checkpointing)

