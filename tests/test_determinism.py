"""A request's answer does not depend on what it is batched with, in bf16 (what `precision: auto` picks on
CPUs with bf16 units) as in fp32: a burst of concurrent requests through the generation worker gets exactly
the answers the same requests get one by one (docs/guides/serving.md, "Equal answers")."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from conftest import WORDS

from framework.config import GeneratorConfig
from framework.serving.generator import HFGenerator
from framework.serving.worker import GenerationWorker, results


@pytest.fixture(scope="module")
def attention_model(tiny_model, tmp_path_factory) -> Path:
    """A one-layer Llama whose attention heads are 32 wide (the tiny model's are 8): wide enough that CPU attention
    kernels round a left-padded row differently in bf16, as they do for the bundled model."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("attention-llama")
    tok = AutoTokenizer.from_pretrained(tiny_model)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=2048,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id)
    LlamaForCausalLM(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def _questions(n: int) -> list[list[dict]]:
    """Prompts of 100 to 700 words (RAG prompts are several hundred tokens), so batches mix padded rows."""
    rng = random.Random(1)
    return [[{"role": "user", "content": " ".join(rng.choice(WORDS[:150]) for _ in range(rng.randint(100, 700)))}]
            for _ in range(n)]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32], ids=["bf16", "fp32"])
def test_a_concurrent_burst_gets_the_answers_of_the_same_requests_one_by_one(attention_model, dtype):
    shipped = GeneratorConfig()
    gen = HFGenerator(attention_model, dtype=dtype, batch_size=8, pad_multiple=shipped.pad_multiple)
    conversations = _questions(32)
    alone = [gen.complete([c], max_new_tokens=8)[0] for c in conversations]
    worker = GenerationWorker(gen, max_batch=8)
    burst = results([worker.submit(c, adapter=None, max_new_tokens=8) for c in conversations])
    worker.close()
    assert max(worker.batch_sizes) == 8  # the requests were batched ...
    prompts = [gen.render(c) for c in conversations]
    assert sum(len(rows) > 1 for rows in gen._batches(prompts)) >= 4  # ... and answered several to a forward pass
    assert [(g.text, g.tokens) for g in burst] == [(g.text, g.tokens) for g in alone]


def test_prompts_share_a_batch_only_when_padded_to_the_same_length(attention_model):
    gen = HFGenerator(attention_model, batch_size=2, pad_multiple=64)
    lengths = {}
    prompts = [gen.render(c) for c in _questions(12)]
    for rows in gen._batches(prompts):
        assert 1 <= len(rows) <= 2
        padded = {-(-len(gen.tokenizer(prompts[i], add_special_tokens=False)["input_ids"]) // 64) for i in rows}
        assert len(padded) == 1
        lengths.update(dict.fromkeys(rows, padded.pop()))
    assert sorted(lengths) == list(range(12))  # every prompt answered once
