"""Export an adapter version as a plain peft folder that other servers load (vLLM `--lora-modules`).

A registry version already holds peft files, but written for ragtune: `target_modules`
lists full module paths (`model.layers.0.self_attn.q_proj`, how peft records
`all-linear`), which some servers reject, and `base_model_name_or_path` names the path
the adapter was trained from. The export rewrites the config to the module names
(`q_proj`, `down_proj`...), points it at the base the server will load, copies the
weights unchanged, and records the audience beside them (`ragtune_adapter.json`), since
a server outside ragtune checks no audience. It is verified before it is moved into
place: loaded back with peft on the base, its logits must equal the registry version's.

Example:
    >>> export_adapter(ref, Path("exports/support-v0002"), base_dir=base, base_model="HuggingFaceTB/SmolLM2-135M-Instruct")  # doctest: +SKIP
    {'adapter': 'support-v0002', 'rank': 16, 'target_modules': ['down_proj', ...], ...}
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import torch

from framework.adapters.registry import AdapterRef, check_base

PROBE = "How many days of leave do I have?"


class ExportVerificationError(RuntimeError):
    """The exported folder does not reproduce the adapter."""


def _logits(model, tokenizer) -> torch.Tensor:
    enc = tokenizer(PROBE, return_tensors="pt")
    with torch.no_grad():
        return model(**enc).logits[0].float()


def _verify(folder: Path, ref: AdapterRef, base_dir: Path) -> float:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_dir, local_files_only=True)
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32, local_files_only=True)
    model = PeftModel.from_pretrained(base, str(ref.path), adapter_name="registry", is_trainable=False).eval()
    model.load_adapter(str(folder), adapter_name="export", is_trainable=False)
    model.set_adapter("registry")
    expected = _logits(model, tokenizer)
    model.set_adapter("export")
    diff = (_logits(model, tokenizer) - expected).abs().max().item()
    if diff > 1e-5:
        raise ExportVerificationError(f"the export of {ref.key} changes the logits by {diff:.2e} when loaded with peft; "
                                      "nothing was written. Report this with the adapter's adapter_config.json.")
    return diff


def export_adapter(ref: AdapterRef, out_dir: Path, *, base_dir: Path, base_model: str | None = None) -> dict:
    """Write `ref` as a plain peft folder into `out_dir` (replaced atomically); `base_model`: what the serving
    side loads as the base (default: `base_dir`, the local base ragtune trained on). Returns a report."""
    check_base(ref, base_dir)
    config = json.loads((ref.path / "adapter_config.json").read_text())
    modules = config["target_modules"]
    names = sorted({m.rsplit(".", 1)[-1] for m in ([modules] if isinstance(modules, str) else modules)})
    config.update({"target_modules": names, "base_model_name_or_path": base_model or str(base_dir),
                   "inference_mode": True})
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        shutil.copy2(ref.path / "adapter_model.safetensors", tmp / "adapter_model.safetensors")
        (tmp / "adapter_config.json").write_text(json.dumps(config, indent=2))
        report = {"adapter": ref.key, "base_model": config["base_model_name_or_path"], "rank": config["r"],
                  "target_modules": names, "max_logit_diff": _verify(tmp, ref, base_dir),
                  "audience": list(ref.manifest.audience), "document_acl": dict(ref.manifest.document_acl)}
        (tmp / "ragtune_adapter.json").write_text(json.dumps(report, indent=2))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report
