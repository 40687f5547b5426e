import json

import pytest
from conftest import project_config

from framework.dataset.imports import ImportFormatError, read_import
from framework.project import Project, load_config, load_config_dict


def _files(tmp_path):
    chat = tmp_path / "chat.jsonl"
    chat.write_text(json.dumps({"messages": [{"role": "system", "content": "Be brief."},
                                             {"role": "user", "content": "Where is the VPN guide kept?"},
                                             {"role": "assistant", "content": "On the IT wiki."}]}) + "\n\n")
    alpaca = tmp_path / "alpaca.json"
    alpaca.write_text(json.dumps([{"instruction": "Summarise the travel rule", "input": "Trains: second class.",
                                   "output": "Trains are second class."}]))
    faq = tmp_path / "faq.csv"
    faq.write_text("Question,Answer,owner\nWho approves trips?,The team lead approves trips.,ops\n")
    return chat, alpaca, faq


def test_three_formats_become_chat_rows_tagged_by_file(tmp_path):
    chat, alpaca, faq = _files(tmp_path)
    rows = read_import(chat) + read_import(alpaca) + read_import(faq)
    assert [r["generator"] for r in rows] == ["import:chat.jsonl", "import:alpaca.json", "import:faq.csv"]
    assert rows[0]["question"] == "Where is the VPN guide kept?" and rows[0]["messages"][0]["role"] == "system"
    assert rows[1]["messages"][0]["content"] == "Summarise the travel rule\n\nTrains: second class."
    assert rows[2]["answer"] == "The team lead approves trips." and rows[2]["source_line"] == 2


@pytest.mark.parametrize("name, content, message", [
    ("bad.jsonl", '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n{oops',
     r"bad.jsonl:2: not valid JSON"),
    ("bad.jsonl", '{"messages": [{"role": "user", "content": "hi"}]}', r"bad.jsonl:1: 'messages' must be"),
    ("bad.jsonl", '{"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "q"}]}',
     r"bad.jsonl:1: the conversation must"),
    ("bad.json", '[{"instruction": "x", "output": ""}]', r"bad.json: item 0: needs non-empty"),
    ("bad.json", '{"instruction": "x"}', r"expected a JSON list"),
    ("bad.csv", "q,a\nx,y\n", r"bad.csv:1: the header needs 'question' and 'answer'"),
    ("bad.csv", "question,answer\nok?,fine\n,missing\n", r"bad.csv:3: empty question or answer"),
    ("bad.txt", "x", r"unknown extension"),
])
def test_bad_files_name_the_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ImportFormatError, match=message):
        read_import(path)


def test_imports_are_mixed_into_train_and_paths_are_relative_to_the_config(tmp_path, corpus):
    _files(tmp_path)
    cfg = project_config(tmp_path, corpus, dataset={"import": ["chat.jsonl", "faq.csv"]})
    (tmp_path / "ragtune.yaml").write_text(json.dumps(cfg))
    project = Project(load_config(tmp_path / "ragtune.yaml"), show_progress=False)
    project.ingest()
    card = project.synthesize()
    train = [json.loads(x) for x in (project.dataset_dir() / "train.jsonl").read_text().splitlines()]
    imported = [r for r in train if r["generator"].startswith("import:")]
    assert {r["generator"] for r in imported} == {"import:chat.jsonl", "import:faq.csv"}
    assert card.generated_by_generator["import:faq.csv"] == 1 and card.kept_by_generator["import:chat.jsonl"] == 1
    assert card.config["import"] == [str(tmp_path / "chat.jsonl"), str(tmp_path / "faq.csv")]


def test_missing_import_file_is_a_clear_error(tmp_path, corpus):
    project = Project(load_config_dict(project_config(tmp_path, corpus, dataset={"import": [str(tmp_path / "no.csv")]})),
                      show_progress=False)
    project.ingest()
    with pytest.raises(ImportFormatError, match="no.csv not found"):
        project.synthesize()
