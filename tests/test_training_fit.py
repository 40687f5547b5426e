"""Training rows fit the model: RAFT context trimmed chunk by chunk (oracle kept), none dropped in silence."""

import random

import pytest
from conftest import WORDS, make_chunk

from framework.config import FinetuneConfig, RaftConfig
from framework.dataset.formatting import format_examples
from framework.records import QAPair, Source
from framework.training.fitting import TooManyDroppedError, fit_training_rows, split_context


def _long_text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS[:60]) for _ in range(words))


def _long_chunk_rows(n_docs: int = 6, words: int = 360, seed: int = 0) -> list[dict]:
    """Closed-book and 3-chunk RAFT rows over chunks of `words` words: a RAFT row is about 3x that long."""
    rng = random.Random(seed)
    days = ["10", "12", "16", "20", "24", "28"][:n_docs]  # in the tiny tokenizer's vocabulary
    chunks = [make_chunk(_long_text(rng, words) + f" leave is {d} days .", doc_id=f"doc{i}", id=f"doc{i}-0")
              for i, d in enumerate(days)]

    def retrieve(question: str, k: int) -> list[Source]:
        return [Source(chunk_id=c.id, doc_id=c.doc_id, title=c.title, uri=c.uri, score=0.5, text=c.text)
                for c in rng.sample(chunks, k)]

    pairs = [(c, QAPair(question=f"how many days of leave {i} ?", answer=f"{d} days", kind="span",
                        fact=c.text[-20:])) for i, (c, d) in enumerate(zip(chunks, days))]
    return format_examples(pairs, generator="extractive", raft=RaftConfig(fraction=1.0, oracle_probability=1.0,
                                                                          context_chunks=3),
                           retrieve=retrieve, rng=rng)


def _tokenizer(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model, local_files_only=True)


def test_long_raft_rows_are_trimmed_not_dropped_and_keep_the_oracle(tiny_model):
    rows = _long_chunk_rows()
    tok = _tokenizer(tiny_model)
    # 3 chunks of ~360 words do not fit the tiny model's 1024-position window; 1 or 2 do.
    items, report = fit_training_rows(tok, tiny_model, rows, FinetuneConfig())
    assert report.max_length == 1024 == report.context_window  # auto: capped at the base's window
    assert report.dropped == 0 and len(items) == len(rows)
    combined = report.by_mode["combined"]
    assert combined["rows"] == 6 and combined["trimmed"] >= 1
    raft = [r for r in rows if r["mode"] == "combined"]
    # Every fitted combined row still holds the oracle chunk's text (the answer's number ends it).
    fitted_texts = [tok.decode(i["input_ids"]) for i in items]
    for row in raft:
        oracle_tail = f"leave is {row['answer'].split()[0]} days"
        assert any(oracle_tail in t and "company documents" in t for t in fitted_texts), row["answer"]


def test_a_fixed_max_length_that_drops_too_many_rows_stops_and_names_the_setting(tiny_model):
    rows = _long_chunk_rows(words=500)  # even the oracle chunk alone is over 400 tokens
    with pytest.raises(TooManyDroppedError, match=r"6 of 6 combined rows.*finetune\.max_length \(now 400"):
        fit_training_rows(_tokenizer(tiny_model), tiny_model, rows, FinetuneConfig(max_length=400))
    items, report = fit_training_rows(_tokenizer(tiny_model), tiny_model, rows,
                                      FinetuneConfig(max_length=400, max_dropped_fraction=1.0))
    assert report.by_mode["combined"] == {"rows": 6, "trimmed": 0, "dropped": 6}
    assert report.by_mode["finetuned"]["dropped"] == 0 and len(items) == 6


def test_split_context_refuses_a_message_it_cannot_render_back():
    assert split_context("Answer the question using the company documents below.\n\n[2] t: a\n\nQuestion: q") is None
    assert split_context("How many days of leave?") is None
    head, items, question = split_context(
        "Answer the question using the company documents below.\n\n[1] Policy: a: b\n[2] x: c\n\nQuestion: q?")
    assert items == [("Policy", "a: b"), ("x", "c")] and question == "Question: q?"


def test_the_estimate_reports_rows_per_mode_and_why_training_would_stop(tiny_model):
    from framework.training.estimate import estimate_training

    rows = _long_chunk_rows(words=500)
    est = estimate_training(rows=rows, model_dir=tiny_model, bf16=False, measure_steps=1,
                            cfg=FinetuneConfig(max_length=400, batch_size=4, rank=4, alpha=8))
    assert est.rows["by_mode"]["combined"] == {"rows": 6, "trimmed": 0, "dropped": 6}
    assert est.skipped_too_long == 6 and "finetune.max_length (now 400" in est.problem
    text = est.describe()
    assert "combined 6 (0 trimmed to fit, 6 dropped)" in text and "this run would stop before training" in text
