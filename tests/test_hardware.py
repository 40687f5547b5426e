"""Device placement, precision, quantization, gradient checkpointing and padded vs packed batches."""

import json

import pytest
import torch
from conftest import project_config
from test_rerank import _tiny_cross_encoder

from framework.config import ConfigError, FinetuneConfig
from framework.project import Project, load_config_dict
from framework.runtime.device import DeviceError, attention_implementation, resolve_device
from framework.runtime.precision import resolve_dtype
from framework.runtime.quantization import QuantizationError, bnb_config, check_quantization


@pytest.mark.parametrize("spec, cuda, count, expected", [
    ("auto", False, 0, "cpu"),
    ("auto", True, 2, "cuda:0"),
    ("cpu", True, 2, "cpu"),
    ("cuda", True, 1, "cuda:0"),
    ("cuda:1", True, 2, "cuda:1"),
    ("CUDA:0", True, 1, "cuda:0"),
])
def test_device_resolves(spec, cuda, count, expected, monkeypatch):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert resolve_device(spec, cuda_available=cuda, count=count) == expected


def test_a_launcher_s_local_rank_picks_the_gpu(monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert resolve_device("auto", cuda_available=True, count=2) == "cuda:1"
    assert resolve_device("cuda", cuda_available=True, count=2) == "cuda:1"


@pytest.mark.parametrize("spec, cuda, count, message", [
    ("cuda:2", True, 2, r"asks for GPU 2 but this machine has 2 \(cuda:0 to cuda:1\)"),
    ("cuda", False, 0, "torch sees none on this machine"),
    ("cuda:0", False, 0, "set runtime.device: cpu or auto"),
    ("gpu", True, 1, "write auto, cpu, cuda or cuda:N"),
    ("cpu:1", False, 0, "is not a device"),
])
def test_device_errors_say_what_to_set(spec, cuda, count, message):
    with pytest.raises(DeviceError, match=message):
        resolve_device(spec, cuda_available=cuda, count=count)


def test_this_machine_resolves_auto_to_what_torch_sees():
    assert resolve_device("auto") == ("cuda:0" if torch.cuda.is_available() else "cpu")


def test_config_rejects_an_unknown_device(tmp_path, corpus):
    with pytest.raises(ConfigError, match="runtime.device"):
        load_config_dict(project_config(tmp_path, corpus, runtime={"device": "tpu"}))


def test_attention_kernel_follows_device_and_package():
    assert attention_implementation("cpu", flash_installed=True) == "sdpa"
    assert attention_implementation("cuda:0", dtype=torch.bfloat16, flash_installed=True) == "flash_attention_2"
    assert attention_implementation("cuda:0", dtype=torch.float32, flash_installed=True) == "sdpa"
    assert attention_implementation("cuda:0", dtype=torch.bfloat16, flash_installed=False) == "sdpa"


def test_auto_precision_on_a_gpu_is_bf16_only_where_it_runs():
    if not torch.cuda.is_available():  # asking for a GPU's precision on a machine without one: fp32, never bf16
        assert resolve_dtype("auto", "cuda:0") == torch.float32
    assert resolve_dtype("fp32", "cuda:0") == torch.float32 and resolve_dtype("bf16", "cpu") == torch.bfloat16


def test_every_component_is_placed_on_the_configured_device(tmp_path, corpus, tiny_model):
    reranker = _tiny_cross_encoder(tmp_path / "ce")
    cfg = load_config_dict(project_config(tmp_path, corpus, tiny_model, runtime={"device": "cpu"},
                                          index={"reranker": str(reranker)}))
    project = Project(cfg, show_progress=False)
    assert project.device == "cpu"
    project.ingest()
    assert project.retriever.reranker.model.model.device.type == "cpu"
    gen = project.generator
    assert {p.device.type for p in gen.model.parameters()} == {"cpu"}
    assert gen.serving_info() == {"device": "cpu", "precision": "fp32", "attention": "sdpa"}
    answer = project.ask("what is the meal limit ?", mode="rag")
    assert (answer.device, answer.precision) == ("cpu", "fp32")
    assert answer.to_dict()["device"] == "cpu"


def test_sentence_transformer_embedder_is_placed_on_the_device():
    from framework.retrieval.embedder import build_embedder

    emb = build_embedder("bundled", precision="fp32", device="cpu")
    assert emb.device == "cpu" and next(emb.model.parameters()).device.type == "cpu"


def test_quantization_without_cuda_fails_before_loading_and_says_what_to_set():
    with pytest.raises(QuantizationError, match=r"4bit needs a CUDA GPU .* Set finetune.quantization: none"):
        bnb_config("4bit", "cpu")
    with pytest.raises(QuantizationError, match=r"pip install 'ragtune\[gpu\]'"):
        check_quantization("8bit", "cuda:0", bnb_installed=False)
    check_quantization("4bit", "cuda:0", bnb_installed=True)  # a GPU with bitsandbytes: allowed
    assert bnb_config("none", "cpu") is None


def test_serving_a_quantized_base_without_cuda_fails_with_the_fix(tiny_model):
    from framework.serving.generator import HFGenerator

    with pytest.raises(QuantizationError, match="generator.quantization: 8bit needs a CUDA GPU"):
        HFGenerator(tiny_model, device="cpu", quantization="8bit")


def test_qlora_config_is_nf4_with_double_quantization(monkeypatch):
    import framework.runtime.quantization as q

    monkeypatch.setattr(q, "check_quantization", lambda *a, **k: None)  # build the config only; no GPU here
    four = q.bnb_config("4bit", "cuda:0", compute_dtype=torch.bfloat16)
    assert four.load_in_4bit and four.bnb_4bit_quant_type == "nf4" and four.bnb_4bit_use_double_quant
    assert four.bnb_4bit_compute_dtype == torch.bfloat16
    assert q.bnb_config("8bit", "cuda:0").load_in_8bit


def test_quantized_finetune_on_cpu_fails_with_the_fix(tmp_path, corpus, tiny_model):
    cfg = load_config_dict(project_config(tmp_path, corpus, tiny_model, runtime={"device": "cpu"},
                                          finetune={"quantization": "4bit"}))
    project = Project(cfg, show_progress=False)
    project.ingest()
    project.synthesize()
    with pytest.raises(QuantizationError, match="finetune.quantization: none"):
        project.finetune()
    assert project.adapters.versions("t") == []


@pytest.mark.parametrize("checkpointing, packing", [(True, True), (False, False)])
def test_training_with_checkpointing_or_padding_learns(tmp_path, corpus, tiny_model, checkpointing, packing):
    cfg = load_config_dict(project_config(tmp_path, corpus, tiny_model, runtime={"device": "cpu"},
                                          finetune={"gradient_checkpointing": checkpointing, "packing": packing,
                                                    "max_steps": 3}))
    project = Project(cfg, show_progress=False)
    project.ingest()
    project.synthesize()
    manifest = project.finetune(promote=True)
    m = dict(manifest.metrics)
    assert m["gradient_checkpointing"] is checkpointing and m["packing"] is packing and m["device"] == "cpu"
    assert m["steps"] == 3 and m["train_loss"] > 0
    assert project.ask("what is the meal limit ?", mode="finetuned").adapter == "t-v0001"


def test_padded_and_packed_batches_give_the_same_loss(tiny_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from framework.training.lora import AnswerOnlyPackedCollator, AnswerOnlyPaddedCollator, tokenize_example

    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, attn_implementation="sdpa")
    convs = [[{"role": "user", "content": "how many leave days ?"}, {"role": "assistant", "content": "28 days ."}],
             [{"role": "user", "content": "what is the meal limit per day ?"}, {"role": "assistant", "content": "45"}]]
    feats = [tokenize_example(tok, c, 512) for c in convs]
    with torch.no_grad():
        packed = model(**AnswerOnlyPackedCollator()(feats)).loss
        padded = model(**AnswerOnlyPaddedCollator(tok.pad_token_id)(feats)).loss
    assert torch.allclose(packed, padded, rtol=1e-4)  # the same loss but for float rounding of the kernels


def test_gradient_checkpointing_auto_turns_on_only_when_the_estimate_needs_it(tiny_model):
    from framework.training.memory import ModelShape, estimate_for_shape, estimate_memory

    cfg = FinetuneConfig(batch_size=4, max_length=64)
    items = [{"input_ids": [1] * 60, "labels": [-100] * 40 + [1] * 20}] * 8
    roomy = estimate_memory(tiny_model, cfg, bf16=False, device="cuda:0", items=items, device_bytes=10**12)
    assert roomy.fits and not roomy.checkpointing and roomy.tokens_per_step == 240
    json.dumps(roomy.to_dict())
    deep = ModelShape(hidden=64, intermediate=128, layers=24, heads=4, kv_heads=2, head_dim=16, vocab=500)
    kw = dict(bf16=True, device="cuda:0", lengths=[60] * 8)
    free = estimate_for_shape(deep, cfg, device_bytes=10**12, **kw)
    assert free.checkpointed_activation_bytes < free.activation_bytes / 3 and not free.checkpointing
    need = free.total_bytes - (free.activation_bytes - free.checkpointed_activation_bytes) // 2
    tight = estimate_for_shape(deep, cfg, device_bytes=need, **kw)
    assert tight.checkpointing and tight.fits
    hopeless = estimate_for_shape(deep, cfg, device_bytes=1000, **kw)
    assert hopeless.checkpointing and not hopeless.fits and "to fit: a smaller base model" in hopeless.describe()
    forced = estimate_for_shape(deep, cfg.model_copy(update={"gradient_checkpointing": False}), device_bytes=need,
                                checkpointing=False, **kw)
    assert not forced.fits and "finetune.gradient_checkpointing: true" in forced.describe()

