"""Parsing in worker processes: a hung or crashing parser is a report entry, the run goes on.

The slow and crashing parsers come through the documented hook for new sources: a
Connector whose SourceItem.read is any callable (here, test-only functions).
"""

import ctypes
import os
import time

from framework.ingest.contract import SourceItem
from framework.ingest.ledger import Ledger
from framework.ingest.parse_pool import ParsePool
from framework.ingest.pipeline import ingest
from framework.records import Document
from framework.retrieval.embedder import HashingEmbedder
from framework.retrieval.index import ChromaIndex


def _doc(name: str) -> Document:
    return Document(id=f"t:{name}", text=f"The {name} document says the parking garage opens at seven.",
                    source="t", uri=f"test://{name}", title=name, content_hash=name, acl=("public",))


def _hang() -> Document:
    while True:  # a parser stuck in a loop, as on a pathological file
        time.sleep(0.05)


def _segfault() -> Document:
    ctypes.string_at(0)  # a C-level crash in a parser takes the whole process down


def _raise() -> Document:
    raise ValueError("unsupported compression method")


class _Connector:
    name = "t"

    def __init__(self, reads: dict) -> None:
        self.reads = reads

    def scan(self):
        for name, read in self.reads.items():
            yield SourceItem(doc_id=f"t:{name}", uri=f"test://{name}", content_hash=name, read=read, acl=("public",))


def test_hung_and_crashing_parsers_become_report_entries(tmp_path):
    reads = {"good1": lambda: _doc("good1"), "hang": _hang, "segv": _segfault, "bad": _raise,
             "good2": lambda: _doc("good2"), "good3": lambda: _doc("good3")}
    embedder = HashingEmbedder()
    index = ChromaIndex.open(path=str(tmp_path / "chroma"), collection="timeouts", embedder_name=embedder.name)
    ledger = Ledger(tmp_path / "ledger.sqlite")
    start = time.monotonic()
    report = ingest([_Connector(reads)], embedder=embedder, index=index, ledger=ledger, chunk_size=32,
                    chunk_overlap=4, parse_workers=2, parse_timeout_s=1.5, show_progress=False).to_dict()
    assert time.monotonic() - start < 60
    reasons = {f["doc_id"]: f["reason"] for f in report["failures"]}
    assert reasons["t:hang"].startswith("test://hang: parsing took longer than 1.5s (ingest.parse_timeout_s)")
    assert "crashed" in reasons["t:segv"] and "SIGSEGV" in reasons["t:segv"]
    assert reasons["t:bad"] == ("test://bad: the parser failed (ValueError: unsupported compression method); the file "
                                "may be corrupt: open and save it again, or exclude it")
    assert report["documents"]["new"] == 3 and report["documents"]["failed"] == 3
    assert {r.doc_id for r in index.rows()} == {"t:good1", "t:good2", "t:good3"}


def test_worker_and_in_process_parsing_agree(tmp_path, corpus):
    from connectors.files import FilesConnector

    items = [i for i in FilesConnector(name="docs", root=corpus, acl=("public",)).scan()]
    here = {r.position: r.document for r in ParsePool(items, workers=0).results()}
    with ParsePool(items, workers=2, timeout_s=30) as pool:
        workers = {r.position: r.document for r in pool.results()}
    assert here == workers and len(here) == len(items) == 5


def test_workers_are_gone_after_the_run(tmp_path):
    items = [SourceItem(doc_id=f"t:{i}", uri="u", content_hash="h", read=_raise) for i in range(4)]
    pool = ParsePool(items, workers=2, timeout_s=5)
    with pool:
        assert all(r.error for r in pool.results())
        pids = [w.process.pid for w in pool._pool]
    for pid in pids:
        try:
            os.kill(pid, 0)
            gone = False
        except ProcessLookupError:
            gone = True
        assert gone, f"worker {pid} still alive"
