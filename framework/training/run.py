"""Train an adapter on a dataset version and publish it: the `ragtune finetune` lifecycle.

Reads the dataset version (card, train and eval rows), checks a resume against the
interrupted run's identity, trains into the adapter's staging folder, then publishes the
next version with its manifest in one rename and clears the checkpoints. A run killed at
any point leaves the registry as it was: the staged files are invisible to readers.

Example:
    >>> manifest = train_and_publish(dataset_dir=ws.dataset_root("default") / "v0001",  # doctest: +SKIP
    ...     base_model_dir=base, base_model="bundled", cfg=cfg.finetune, precision="auto",
    ...     registry=AdapterRegistry(ws.adapters), workspace=ws)
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import torch

from framework.adapters.manifest import AdapterManifest, build_manifest
from framework.adapters.registry import AdapterRef, AdapterRegistry, base_fingerprint, check_base
from framework.config import FinetuneConfig, Precision
from framework.dataset.card import DatasetCard
from framework.runtime.device import default_device
from framework.runtime.precision import resolve_dtype
from framework.runtime.quantization import weights_label
from framework.training.checkpoints import clear_checkpoints, prepare_checkpoints, run_identity
from framework.training.estimate import TrainingEstimate, estimate_training
from framework.training.lock import training_lock
from framework.training.lora import frozen_dtype, train_lora
from framework.workspace import Workspace


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def train_and_publish(*, dataset_dir: Path, base_model_dir: Path, base_model: str, cfg: FinetuneConfig,
                      precision: Precision, registry: AdapterRegistry, workspace: Workspace,
                      resume: bool | Literal["auto"] = False, callbacks: Sequence = (), show_progress: bool = True,
                      rows: Sequence[dict] | None = None, warm_start: AdapterRef | None = None,
                      refresh: Mapping[str, Any] | None = None, promote: bool = False,
                      device: str | None = None) -> AdapterManifest | None:
    """Train `cfg.adapter` on the dataset version in `dataset_dir`; returns the published manifest. The new
    version serves only once promoted: `promote=True` does it at once (else `ragtune adapters promote`).

    `rows` trains on a chosen part of the version's training rows (a refresh: new and changed
    examples plus a replay sample) while the manifest still names the whole version;
    `warm_start` starts from that version's LoRA weights instead of a fresh adapter;
    `refresh` is recorded in the manifest. Under torchrun / accelerate launch every process
    trains its share and only the main one publishes; the others return None. One run per
    adapter and workspace at a time: a second raises TrainingBusyError before touching the first
    one's checkpoints (framework.training.lock).
    """
    with training_lock(workspace.training_lock(cfg.adapter), cfg.adapter):
        return _train_and_publish(dataset_dir=dataset_dir, base_model_dir=base_model_dir, base_model=base_model,
                                  cfg=cfg, precision=precision, registry=registry, workspace=workspace,
                                  resume=resume, callbacks=callbacks, show_progress=show_progress, rows=rows,
                                  warm_start=warm_start, refresh=refresh, promote=promote,
                                  device=device or default_device())


def _train_and_publish(*, dataset_dir: Path, base_model_dir: Path, base_model: str, cfg: FinetuneConfig,
                       precision: Precision, registry: AdapterRegistry, workspace: Workspace,
                       resume: bool | Literal["auto"], callbacks: Sequence, show_progress: bool,
                       rows: Sequence[dict] | None, warm_start: AdapterRef | None,
                       refresh: Mapping[str, Any] | None, promote: bool, device: str) -> AdapterManifest | None:
    from accelerate import PartialState

    card = DatasetCard.load(dataset_dir)
    train = _rows(dataset_dir / "train.jsonl") if rows is None else list(rows)
    evals = _rows(dataset_dir / "eval.jsonl")
    bf16 = resolve_dtype(precision, device) == torch.bfloat16
    fingerprint = base_fingerprint(base_model_dir)
    if warm_start is not None:
        check_base(warm_start, base_model_dir)
    rows_hash = None if rows is None else \
        hashlib.sha256(json.dumps(train, sort_keys=True).encode()).hexdigest()[:16]
    identity = run_identity(dataset_hash=card.hash, base_fingerprint=fingerprint,
                            precision="bf16" if bf16 else "fp32", hyperparameters=cfg.model_dump(),
                            rows_hash=rows_hash, warm_start=warm_start.key if warm_start else None)
    checkpoints = workspace.checkpoints(cfg.adapter)
    staging = registry.staging_dir(cfg.adapter)
    resume_from = prepare_checkpoints(checkpoints, identity, resume=resume, staging=staging)
    started = datetime.now(timezone.utc)
    metrics = train_lora(base_model_dir, train, evals, cfg, staging, bf16=bf16, checkpoint_dir=checkpoints,
                         resume_from=resume_from, show_progress=show_progress, callbacks=callbacks,
                         init_adapter=warm_start.path if warm_start else None, device=device)
    if not PartialState().is_main_process:
        return None
    manifest = build_manifest(card=card, cfg=cfg, base_model=base_model, base_fingerprint=fingerprint,
                              precision=identity["precision"],
                              base_dtype=str(frozen_dtype(cfg, bf16=bf16)).removeprefix("torch.")
                              if cfg.quantization == "none" else weights_label(cfg.quantization, torch.bfloat16),
                              metrics=metrics, started=started, ledger=workspace.ledger,
                              warm_start=warm_start.manifest if warm_start else None, refresh=refresh)
    ref = registry.publish(cfg.adapter, staging, manifest)
    if promote:
        registry.promote(ref.name, ref.version)
    clear_checkpoints(checkpoints)
    return ref.manifest


def estimate_run(*, dataset_dir: Path, base_model_dir: Path, cfg: FinetuneConfig, precision: Precision,
                 measure_steps: int = 2, device: str | None = None) -> TrainingEstimate:
    """What `train_and_publish` on this dataset version will cost (framework.training.estimate)."""
    device = device or default_device()
    return estimate_training(rows=_rows(dataset_dir / "train.jsonl"), model_dir=base_model_dir, cfg=cfg,
                             bf16=resolve_dtype(precision, device) == torch.bfloat16, measure_steps=measure_steps,
                             device=device)


def estimate_run_memory(*, dataset_dir: Path, base_model_dir: Path, cfg: FinetuneConfig, precision: Precision,
                        device: str | None = None):
    """The peak memory `train_and_publish` on this dataset version will take on `device`, and whether it fits
    (framework.training.memory); instant: nothing is loaded but the tokenizer."""
    from transformers import AutoTokenizer

    from framework.training.lora import tokenize_rows
    from framework.training.memory import estimate_memory

    device = device or default_device()
    tokenizer = AutoTokenizer.from_pretrained(base_model_dir, local_files_only=True)
    items, _ = tokenize_rows(tokenizer, _rows(dataset_dir / "train.jsonl"), cfg.max_length)
    return estimate_memory(base_model_dir, cfg, bf16=resolve_dtype(precision, device) == torch.bfloat16,
                           device=device, items=items)
