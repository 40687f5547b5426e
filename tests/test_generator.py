"""The generator: one base model, per-request adapters, and what each generation reports."""

import torch

from framework.serving.generator import HFGenerator


def test_generation_reports_its_tokens_and_whether_the_budget_cut_it(tiny_model):
    gen = HFGenerator(tiny_model)
    eos, word = gen.model.generation_config.eos_token_id, gen.tokenizer.convert_tokens_to_ids("leave")
    ended = gen._finished(torch.tensor([word, word, eos, gen.tokenizer.pad_token_id]), max_new_tokens=4)
    assert (ended.text, ended.tokens, ended.truncated) == ("leave leave", 2, False)
    cut = gen._finished(torch.tensor([word] * 4), max_new_tokens=4)
    assert cut.tokens == 4 and cut.truncated
    real = gen.complete([[{"role": "user", "content": "how many leave days ?"}]] * 2, max_new_tokens=3)
    assert len(real) == 2 and all(g.tokens <= 3 and (g.truncated == (g.tokens == 3)) for g in real)
    assert gen.generate([[{"role": "user", "content": "how many leave days ?"}]], max_new_tokens=3) == [real[0].text]
