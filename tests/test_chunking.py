"""Structure-aware chunking: headings bound chunks, prose runs on across pages, and chunks know where they are."""

import re

from conftest import write_minimal_pdf

from framework.ingest.chunking import chunk_document, embedding_text, make_splitter, split_sections
from framework.project import Project, load_config_dict
from framework.records import Document, Principal
from framework.retrieval.embedder import HashingEmbedder


def _doc(text: str) -> Document:
    return Document(id="d:x", text=text, source="d", uri="file:///x", title="Guide", content_hash="h", acl=("public",))


def test_sections_follow_headings_and_skip_code_fences():
    text = "# Benefits\nIntro.\n## Dental\nTwo cleanings a year.\n```\n# not a heading\n```\n### Braces\nCovered for kids."
    sections = split_sections(text)
    assert [s.path for s in sections] == ["Benefits", "Benefits > Dental", "Benefits > Dental > Braces"]
    assert "# not a heading" in sections[1].text


def test_a_sentence_split_by_a_page_break_stays_whole_and_knows_both_pages():
    text = "Page one says the deductible is\f500 dollars a year. Page two says the copay is 20 dollars."
    splitter = make_splitter(HashingEmbedder(), chunk_size=64, chunk_overlap=4)
    [chunk] = chunk_document(_doc(text), splitter)
    assert "deductible is\n500 dollars" in chunk.text
    assert (chunk.page, chunk.page_end) == (1, 2)


def test_each_chunk_records_the_pages_its_text_is_on():
    pages = [" ".join(f"Page {p} sentence {i} about plan rules." for i in range(12)) for p in (1, 2, 3)]
    splitter = make_splitter(HashingEmbedder(), chunk_size=40, chunk_overlap=8)
    chunks = chunk_document(_doc("\f".join(pages)), splitter)
    assert len(chunks) > 6
    for c in chunks:
        on = {int(n) for n in re.findall(r"Page (\d) sentence", c.text)}
        first, last = c.page, c.page_end or c.page
        assert on <= set(range(first, last + 1)), (c.text, first, last)
    assert {c.page for c in chunks} == {1, 2, 3}
    assert any(c.page_end for c in chunks) and not any(c.page_end == c.page for c in chunks)


def test_a_heading_at_the_top_of_a_page_starts_a_new_section():
    sections = split_sections("# Dental\nTwo cleanings.\f# Vision\nOne exam.\fCovered for kids too.")
    assert [(s.path, s.page, s.page_end) for s in sections] == [("Dental", 1, 1), ("Vision", 2, 3)]


def test_small_sections_merge_and_large_ones_split():
    small = "# A\nOne.\n## B\nTwo."
    splitter = make_splitter(HashingEmbedder(), chunk_size=32, chunk_overlap=4)
    merged = chunk_document(_doc(small), splitter)
    assert len(merged) == 1 and merged[0].section == "A" and "Two." in merged[0].text
    big = "# Long\n" + " ".join(f"Sentence number {i} is here." for i in range(40))
    chunks = chunk_document(_doc(big), splitter)
    assert len(chunks) > 3 and {c.section for c in chunks} == {"Long"}
    assert [c.position for c in chunks] == list(range(len(chunks)))


def test_section_path_is_embedded_with_the_text():
    assert embedding_text("Guide", "Two cleanings.", "Benefits > Dental") == "Guide > Benefits > Dental\nTwo cleanings."
    assert embedding_text("Guide", "Text.") == "Guide\nText."


def test_pdf_pages_and_html_sections_reach_the_sources(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    write_minimal_pdf(docs / "plan.pdf", ["The deductible is 500 dollars.", "The copay for a visit is 20 dollars."])
    (docs / "page.html").write_text("<html><head><title>Perks</title></head><body><h1>Perks</h1>"
                                    "<h2>Gym</h2><p>The gym allowance is 40 dollars.</p></body></html>")
    cfg = load_config_dict({"workspace": str(tmp_path / "ws"), "precision": "fp32",
                            "index": {"embedder": "hashing", "retrieval": "lexical"},
                            "sources": [{"name": "docs", "type": "files", "path": str(docs), "public": True}]})
    project = Project(cfg, show_progress=False)
    project.ingest()
    top = project.retrieve("copay for a visit", principal=Principal(), k=1)[0]
    # Both pages fit one chunk: it links to the page it starts on and knows it runs onto page 2.
    assert top.doc_id == "docs:plan.pdf" and list(top.pages) == [1, 2] and top.uri.endswith("plan.pdf#page=1")
    gym = project.retrieve("gym allowance", principal=Principal(), k=1)[0]
    assert gym.section == "Perks > Gym" and gym.page is None and "#page" not in gym.uri


def test_blank_pdf_pages_keep_the_numbering(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    write_minimal_pdf(docs / "cover.pdf", ["", "The deductible is 500 dollars.", "", "The copay is 20 dollars."])
    cfg = load_config_dict({"workspace": str(tmp_path / "ws"), "precision": "fp32",
                            "index": {"embedder": "hashing", "retrieval": "lexical"},
                            "sources": [{"name": "docs", "type": "files", "path": str(docs), "public": True}]})
    project = Project(cfg, show_progress=False)
    project.ingest()
    [top] = project.retrieve("deductible", principal=Principal(), k=1)
    assert (top.page, top.page_end) == (2, 4) and top.uri.endswith("cover.pdf#page=2")
