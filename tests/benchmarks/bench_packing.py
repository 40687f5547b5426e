"""Packed against padded training batches: seconds per epoch, useful tokens/s and loss (opt in: -m benchmark).

    pytest tests/benchmarks/bench_packing.py -m benchmark -s

Trains the bundled SmolLM2-135M-Instruct with the demo's LoRA settings for one epoch over
the same BENCH_ROWS training rows (default 96, in the same order) twice per dataset:
`finetune.packing: false` (each batch padded to its longest example) and `true` (the
examples of a batch end to end, no padding). Both compute logits only at answer positions,
so they differ in padding alone. Datasets: the demo's, and the shared anthropic_docs pages
(skipped when ../shared/datasets is absent), each ingested with the hashing embedder and
synthesized with the extractive generator and RAFT rows (their context chunks make the row
lengths mixed, as a real set's are). Useful tokens are the examples' own tokens, padding
excluded; the loss is the mean training loss over the epoch.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import torch

from framework.cli.demo import demo_dir
from framework.project import Project, load_config, load_config_dict
from framework.training.lora import train_lora

ROWS = int(os.environ.get("BENCH_ROWS", "96"))
DATA = Path(__file__).resolve().parents[3] / "shared" / "datasets"


def _anthropic_pages(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for page in json.loads((DATA / "anthropic_docs" / "anthropic_docs.json").read_text()):
        name = re.sub(r"[^A-Za-z0-9]+", "_", page["chunk_link"].split("//")[-1]).strip("_")[-120:]
        (folder / f"{name}.md").write_text(f"# {page['chunk_heading']}\n\n{page['text']}")
    return folder


def _demo(tmp: Path) -> Project:
    return Project(load_config(demo_dir() / "ragtune.yaml", [f"workspace={tmp / 'demo'}", "index.embedder=hashing"]),
                   show_progress=False)


def _anthropic(tmp: Path) -> Project:
    if not (DATA / "anthropic_docs").is_dir():
        pytest.skip(f"shared datasets not found at {DATA}")
    demo = load_config(demo_dir() / "ragtune.yaml").model_dump(mode="json", by_alias=True)
    cfg = {**demo, "workspace": str(tmp / "anthropic"),
           "sources": [{"name": "docs", "type": "files", "path": str(_anthropic_pages(tmp / "pages")),
                        "include": ["*.md"], "public": True}],
           "index": {"embedder": "hashing"},
           "dataset": {**demo["dataset"], "name": "anthropic", "raft": {"fraction": 0.3, "context_chunks": 2}}}
    return Project(load_config_dict(cfg), show_progress=False)


def _epoch(project: Project, rows: list[dict], packing: bool, out: Path) -> dict:
    cfg = project.config.finetune.model_copy(update={"packing": packing, "epochs": 1, "save_steps": 0,
                                                     "early_stopping_patience": 0, "report_to": []})
    m = train_lora(project.base_model_dir, rows, [], cfg, out / ("packed" if packing else "padded"),
                   bf16=_dtype(project) == torch.bfloat16,
                   checkpoint_dir=out / "ckpt", show_progress=False, device="cpu")
    return m


def _dtype(project: Project):
    from framework.runtime.precision import resolve_dtype

    return resolve_dtype(project.config.precision, "cpu")


@pytest.mark.benchmark
@pytest.mark.parametrize("name, build", [("demo", _demo), ("anthropic_docs", _anthropic)])
def test_bench_packed_vs_padded(tmp_path, name, build):
    from transformers import AutoTokenizer

    from framework.training.lora import tokenize_rows

    project = build(tmp_path)
    project.ingest()
    project.synthesize()
    every = [json.loads(x) for x in (project.dataset_dir() / "train.jsonl").read_text().splitlines()]
    rows = every[::max(1, len(every) // ROWS)][:ROWS]  # spread over the file: closed-book and RAFT rows alike
    tok = AutoTokenizer.from_pretrained(project.base_model_dir)
    items, _ = tokenize_rows(tok, rows, project.config.finetune.max_length)
    lengths = [len(i["input_ids"]) for i in items]
    useful = sum(lengths)
    b = project.config.finetune.batch_size
    padded_tokens = sum(len(lengths[i:i + b]) * max(lengths[i:i + b]) for i in range(0, len(lengths), b))
    results = {}
    for packing in (False, True):
        m = _epoch(project, rows, packing, tmp_path / name)
        results[packing] = {"seconds": m["train_seconds"], "loss": m["train_loss"], "useful_tok_s": useful / m["train_seconds"]}
    pad, pack = results[False], results[True]
    print(f"\n{name}: {len(items)} rows (lengths {min(lengths)}-{max(lengths)}, mean {useful / len(items):.0f}), "
          f"batch {b}, {useful:,} useful tokens, {padded_tokens:,} with padding ({padded_tokens / useful:.2f}x), "
          f"precision {_dtype(project)}, torch threads {torch.get_num_threads()}")
    print(f"{'batches':<8} {'s/epoch':>8} {'useful tok/s':>13} {'train loss':>11}")
    for label, r in (("padded", pad), ("packed", pack)):
        print(f"{label:<8} {r['seconds']:>8.1f} {r['useful_tok_s']:>13.1f} {r['loss']:>11.4f}")
    print(f"packed: {pad['seconds'] / pack['seconds']:.2f}x fewer seconds per epoch; loss "
          f"{100 * (pack['loss'] - pad['loss']) / pad['loss']:+.2f}%")
    assert pack["loss"] > 0 and pad["loss"] > 0
