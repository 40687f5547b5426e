"""The reranking stage: a real (tiny) cross-encoder from a local folder, and the Protocol."""

import pytest
from conftest import project_config

from framework.project import Project, load_config_dict
from framework.records import Principal
from framework.retrieval.rerank import CrossEncoderReranker

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "meal", "limit", "leave", "days", "the", "is", "per",
         "day", "eur", "office", "receipts", "vpn", "annual", "employee", "every", "of"]


def _tiny_cross_encoder(folder):
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder.mkdir(parents=True)
    (folder / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(3)
    model = BertForSequenceClassification(BertConfig(vocab_size=len(WORDS), hidden_size=16, num_hidden_layers=1,
                                                     num_attention_heads=2, intermediate_size=32, num_labels=1))
    model.save_pretrained(folder)
    return folder


def test_cross_encoder_orders_sources_by_its_own_scores(tmp_path, corpus):
    model = _tiny_cross_encoder(tmp_path / "ce")
    cfg = load_config_dict(project_config(tmp_path, corpus, index={"reranker": str(model), "top_k": 3,
                                                                    "rerank_candidates": 6}))
    project = Project(cfg, show_progress=False)
    project.ingest()
    question = "meal limit per day"
    first_stage = project.retriever._search(question, project.embedder.embed([question])[0], Principal(), 6)
    reranked = project.retrieve(question, principal=Principal())
    expected = CrossEncoderReranker(model).model.predict([(question, s.text) for s in first_stage])
    best = sorted(zip(expected.tolist(), [s.chunk_id for s in first_stage]), reverse=True)[:3]
    assert [s.chunk_id for s in reranked] == [cid for _, cid in best]
    assert [s.rerank_score for s in reranked] == sorted((s.rerank_score for s in reranked), reverse=True)
    assert all(s.score == next(f.score for f in first_stage if f.chunk_id == s.chunk_id) for s in reranked)


def test_any_object_with_a_rerank_method_plugs_in(tmp_path, corpus):
    class Reverse:
        def rerank(self, question, sources):
            return list(reversed(sources))

    cfg = load_config_dict(project_config(tmp_path, corpus, index={"top_k": 2, "rerank_candidates": 4}))
    plain = Project(cfg, show_progress=False)
    plain.ingest()
    four = plain.retrieve("meal limit", principal=Principal(), k=4)
    reranked = Project(cfg, show_progress=False, reranker=Reverse()).retrieve("meal limit", principal=Principal())
    assert [s.chunk_id for s in reranked] == [s.chunk_id for s in reversed(four)][:2]


def test_missing_reranker_folder_names_the_key(tmp_path, corpus):
    cfg = load_config_dict(project_config(tmp_path, corpus, index={"reranker": str(tmp_path / "nope")}))
    with pytest.raises(FileNotFoundError, match="index.reranker"):
        Project(cfg, show_progress=False).retrieve("meal", principal=Principal())
