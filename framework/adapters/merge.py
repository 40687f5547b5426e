"""Merge a LoRA adapter into its base and prove the export is what was trained.

A merged model is a plain Hugging Face folder (safetensors, config, tokenizer) that any
runtime can serve without peft. Exports that silently equal the base model are a known
failure elsewhere (an adapter never applied, a wrong model object saved), so the merge
is verified from the files written: reloaded from disk, some weight must differ from
the base by more than `min_delta`, and its logits on a few prompts must match the
adapter-on model within `atol`. Any failure raises and removes the export.

Example:
    >>> report = merge_adapter(base_dir, ref, out_dir)          # doctest: +SKIP
    >>> report["max_weight_delta"] > 0                          # doctest: +SKIP
    True
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import torch

from framework.adapters.registry import AdapterRef, check_base

PROBES = ("What is the policy?", "How many days do I have?", "Who should I ask about this?")


class MergeVerificationError(RuntimeError):
    """The merged export is not the adapter-on model."""


def _logits(model, tokenizer, prompts) -> list[torch.Tensor]:
    out = []
    with torch.no_grad():
        for p in prompts:
            text = tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                                 tokenize=False)
            enc = tokenizer(text, return_tensors="pt", add_special_tokens=False)
            out.append(model(**enc).logits[0].float())
    return out


def merge_adapter(base_dir: Path, ref: AdapterRef, out_dir: Path, *, atol: float = 1e-3,
                  min_delta: float = 1e-6) -> dict:
    """Write base + adapter as one model into out_dir (atomically), verified; returns the verification report."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_base(ref, base_dir)
    tokenizer = AutoTokenizer.from_pretrained(base_dir, local_files_only=True)
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32, local_files_only=True)
    base_state = {k: v.detach().clone() for k, v in base.state_dict().items()}
    peft_model = PeftModel.from_pretrained(base, str(ref.path), is_trainable=False).eval()
    expected = _logits(peft_model, tokenizer, PROBES)
    merged = peft_model.merge_and_unload()
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        merged.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        report = verify_merged(tmp, base_state, expected, tokenizer, atol=atol, min_delta=min_delta)
        # A merged model has no audience check of its own: record who may use it, so whoever
        # deploys it can enforce that.
        report.update({"adapter": ref.key, "base_model": ref.manifest.base_model,
                       "base_fingerprint": ref.manifest.base_fingerprint,
                       "audience": list(ref.manifest.audience),
                       "document_acl": dict(ref.manifest.document_acl)})
        (tmp / "ragtune_merge.json").write_text(json.dumps(report, indent=2))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report


def verify_merged(folder: Path, base_state: dict, expected: list[torch.Tensor], tokenizer, *, atol: float,
                  min_delta: float) -> dict:
    """Reload the export from disk and check it differs from the base and matches the adapter-on logits."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, local_files_only=True).eval()
    state = model.state_dict()
    deltas = {k: (state[k].float() - v.float()).abs().max().item() for k, v in base_state.items() if k in state}
    changed = sorted(k for k, d in deltas.items() if d > min_delta)
    max_delta = max(deltas.values(), default=0.0)
    if not changed:
        raise MergeVerificationError(
            f"the merged model equals the base model (largest weight change {max_delta:.2e} <= {min_delta:.0e}): "
            "the adapter's weights are zero or were not applied. Check that the adapter was trained "
            "(its metrics in `ragtune adapters show`), then merge again.")
    got = _logits(model, tokenizer, PROBES)
    logit_diff = max((a - b).abs().max().item() for a, b in zip(got, expected))
    if logit_diff > atol:
        raise MergeVerificationError(
            f"the merged model's logits differ from the adapter-on model by {logit_diff:.2e} (> {atol:.0e}): "
            "the export does not reproduce the adapter. Nothing was written.")
    return {"changed_tensors": len(changed), "total_tensors": len(deltas), "max_weight_delta": max_delta,
            "max_logit_diff": logit_diff, "probes": list(PROBES), "atol": atol}
