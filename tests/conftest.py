"""Shared fixtures: no network, tiny real models built in-process, real files, real Chroma."""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
import zipfile
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["ANONYMIZED_TELEMETRY"] = "False"
# Converted models go to a per-run cache, never to the user's ~/.cache (framework.runtime.models).
os.environ.setdefault("RAGTUNE_CACHE", tempfile.mkdtemp(prefix="ragtune-test-cache-"))

WORDS = (
    "the a an of to in on at for and or is are be by with from as that it its do does what how which when who "
    "many much day days week weeks hour hours eur euro per month year employees employee must may can cannot "
    "receipts receipt submit within leave annual policy office open vpn client called password characters long "
    "laptop security team expense limit meal travel train bus product plan costs price tier support answer "
    "question use company documents below context yes no not every each monday tuesday friday called named "
    "question: answer: . , ? ! : ; - ( ) [ ] 0 1 2 3 4 5 6 7 8 9 10 12 16 20 24 28 30 45"
).split()


@pytest.fixture(autouse=True)
def block_network(monkeypatch):
    """Any connection off this machine fails the test: ragtune must never reach the network."""
    real_connect = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and (host.startswith("127.") or host in ("localhost", "::1") or host.startswith("/")):
            return real_connect(self, address)
        raise RuntimeError(f"test tried to reach the network: {address!r}")

    monkeypatch.setattr(socket.socket, "connect", guarded)


def build_tiny_model(folder: Path, seed: int = 0) -> Path:
    """A Llama with a few thousand parameters and a word-level tokenizer with a chat template."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>", "user", "assistant", "system", "\n"]
    vocab = {w: i for i, w in enumerate(dict.fromkeys(specials + WORDS))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit()])
    tok.add_special_tokens(["<pad>", "<|im_start|>", "<|im_end|>", "\n"])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>",
                                   eos_token="<|im_end|>", bos_token="<|im_start|>")
    fast.chat_template = (
        "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>' + '\n' }}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    )
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=1024,
                      pad_token_id=vocab["<pad>"], eos_token_id=vocab["<|im_end|>"], bos_token_id=vocab["<|im_start|>"])
    model = LlamaForCausalLM(cfg)
    model.generation_config.pad_token_id = vocab["<pad>"]
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


def write_minimal_pdf(path: Path, text: str | list[str]) -> None:
    """A PDF with real text objects (one page per string), written by hand so tests need no PDF library."""
    pages = [text] if isinstance(text, str) else list(text)
    n = len(pages)
    page_ids = [3 + 2 * i for i in range(n)]
    font_id = 3 + 2 * n
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + b" ".join(f"{p} 0 R".encode() for p in page_ids) + b"] /Count "
        + str(n).encode() + b" >>",
    ]
    for i, page in enumerate(pages):
        content = f"BT /F1 12 Tf 72 720 Td ({page}) Tj ET".encode()
        objs.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents "
                    + f"{page_ids[i] + 1} 0 R".encode() + b" /Resources << /Font << /F1 "
                    + f"{font_id} 0 R".encode() + b" >> >> >>")
        objs.append(b"<< /Length " + str(len(content)).encode() + b" >>\nstream\n" + content + b"\nendstream")
    objs.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(bytes(out))


def write_minimal_docx(path: Path, text: str) -> None:
    body = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        f"<w:body><w:p><w:r><w:t>{text}</w:t></w:r></w:p></w:body></w:document>"
    )
    types = ('<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
             'content-types"><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/'
             'document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.'
             'main+xml"/></Types>')
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("[Content_Types].xml", types)
        z.writestr("word/document.xml", body)


HANDBOOK = """# Employee Handbook

## Leave
Every employee receives 28 days of annual leave per year.
Employees must submit leave requests 10 days in advance.

## Office
The office is open from 08:00 to 20:00 on working days.
The largest meeting room is called Harbour Hall.
"""

EXPENSES = """Expense policy.

The meal limit is 45 EUR per day. Employees must submit receipts within 30 days of the purchase.
The expense tool is called Coinbasket. Train travel is always second class.
"""


@pytest.fixture
def corpus(tmp_path) -> Path:
    root = tmp_path / "docs"
    (root / "policies").mkdir(parents=True)
    (root / "handbook.md").write_text(HANDBOOK)
    (root / "policies" / "expenses.txt").write_text(EXPENSES)
    (root / "policies" / "security.html").write_text(
        "<html><head><title>Security policy</title><script>var x=1;</script></head><body>"
        "<h1>Security</h1><p>Every password must be at least 16 characters long.</p>"
        "<p>The VPN client is called Tunnelwise.</p></body></html>")
    write_minimal_pdf(root / "product.pdf", "The Crumb plan costs 9 EUR per month.")
    write_minimal_docx(root / "travel.docx", "Business trips need approval from the team lead.")
    return root


def project_config(tmp_path: Path, corpus: Path, model: Path | None = None, **sections) -> dict:
    cfg = {
        "workspace": str(tmp_path / "ws"),
        "precision": "fp32",
        "sources": [{"name": "docs", "type": "files", "path": str(corpus), "public": True}],
        "index": {"embedder": "hashing", "top_k": 2, "chunk_size": 48, "chunk_overlap": 8},
        "generator": {"model": str(model) if model else "bundled", "max_new_tokens": 8},
        "dataset": {"name": "t", "eval_fraction": 0.2, "min_examples": 4},
        # The knowledge check and the promotion gate are off unless a test is about them (test_knowledge_*):
        # a tiny random model knows nothing, so they would route and gate every other test's adapter away.
        "finetune": {"adapter": "t", "rank": 4, "alpha": 8, "max_steps": 2, "batch_size": 4, "knowledge_probes": 0,
                     "gate": []},
        "router": {"adapter": "t"},
    }
    for key, value in sections.items():
        cfg[key] = {**cfg.get(key, {}), **value} if isinstance(value, dict) else value
    return cfg


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory):
    """A real `chroma run` server on a free 127.0.0.1 port for the whole session; yields its URL."""
    import shutil
    import subprocess
    import sys
    import time
    import urllib.request

    exe = Path(sys.executable).with_name("chroma")
    exe = str(exe) if exe.exists() else shutil.which("chroma")
    if not exe:
        pytest.skip("the `chroma` command (installed by the chromadb package) is not beside this Python")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder = tmp_path_factory.mktemp("chroma-server")
    log = folder / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen([exe, "run", "--host", "127.0.0.1", "--port", str(port), "--path", str(folder / "data")],
                                stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "ANONYMIZED_TELEMETRY": "False"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=1).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"chroma server did not start on port {port}:\n{log.read_text()[-2000:]}")
            time.sleep(0.2)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def make_chunk(text: str = "x", doc_id: str = "d", **fields):
    """A Chunk record for the dataset stages' unit tests (id, uri and hashes are placeholders)."""
    from framework.records import Chunk

    values = {"id": f"{doc_id}-0", "doc_id": doc_id, "position": 0, "text": text, "title": doc_id,
              "uri": f"file:///{doc_id}", "source": "t", "doc_hash": "h", "acl": ("public",)}
    return Chunk(**{**values, **fields})


def public_and_hr_sources(folder: Path) -> tuple[Path, list[dict]]:
    """The handbook in a public source and the expense policy in an hr-only one, under `folder`."""
    public, private = folder / "public", folder / "private"
    public.mkdir()
    private.mkdir()
    (public / "handbook.md").write_text(HANDBOOK)
    (private / "expenses.txt").write_text(EXPENSES)
    return public, [{"name": "docs", "type": "files", "path": str(public), "public": True},
                    {"name": "hr", "type": "files", "path": str(private), "acl": ["hr"]}]


@pytest.fixture(scope="session")
def two_audiences_config(tmp_path_factory, tiny_model) -> dict:
    """A trained workspace with two promoted adapters, as a config dict: `t` learned the public documents
    (audience everyone) and `hr` also learned hr-only ones (audience hr). Group hr gets `hr`, group sales
    gets `t`, and the default adapter is `hr`, so a user without groups is outside its audience."""
    from framework.project import Project, load_config_dict

    tmp = tmp_path_factory.mktemp("two-audiences")
    public, sources = public_and_hr_sources(tmp)
    cfg = project_config(tmp, public, tiny_model, sources=sources, generator={"max_new_tokens": 6, "batch_size": 8},
                         router={"adapter": "hr", "group_adapters": {"hr": "hr", "sales": "t"}},
                         finetune={"learning_rate": 0.02})  # the two adapters then answer visibly differently
    project = Project(load_config_dict(cfg), show_progress=False)
    project.ingest()
    for adapter, audience, seed in (("t", [], 0), ("hr", ["hr"], 1)):
        project.config = project.config.model_copy(update={
            "dataset": project.config.dataset.model_copy(update={"audience": audience, "name": adapter}),
            "finetune": project.config.finetune.model_copy(update={"adapter": adapter, "seed": seed})})
        project.synthesize()
        assert project.finetune(promote=True).audience == tuple(audience)
    project.close()
    return cfg


@contextmanager
def local_http_server(handler: type, **state):
    """A real HTTP server on 127.0.0.1 (a free port) answering with `handler` from a thread; `state` becomes
    attributes of the server (what handlers record or share). Shut down and closed on exit."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    for name, value in state.items():
        setattr(server, name, value)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def send_json(handler, status: int, payload) -> None:
    """Write `payload` as a JSON response from a BaseHTTPRequestHandler."""
    data = json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def send_chat_reply(handler, content: str) -> None:
    """An OpenAI chat-completion response holding one assistant message."""
    send_json(handler, 200, {"choices": [{"message": {"role": "assistant", "content": content}}]})
