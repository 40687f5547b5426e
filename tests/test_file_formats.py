"""Every format the files connector reads, and every class of bad input, on real files."""

import json
import random
import time
from pathlib import Path

import pytest
from conftest import project_config, write_minimal_pdf

from connectors.files import ParseError, parse_file
from framework.project import Project, load_config_dict
from framework.records import Principal


def random_bytes(n: int, seed: int) -> bytes:
    rng = random.Random(seed)
    return bytes(rng.randrange(1, 256) for _ in range(n))


def write_pptx(path: Path) -> None:
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[1])
    slide.shapes.title.text = "Quarterly roadmap"
    slide.placeholders[1].text = "The Falcon release ships in March."
    table = slide.shapes.add_table(2, 2, Inches(1), Inches(4), Inches(4), Inches(1)).table
    for (r, c), text in {(0, 0): "Team", (0, 1): "Owner", (1, 0): "Billing", (1, 1): "Priya"}.items():
        table.cell(r, c).text = text
    slide.notes_slide.notes_text_frame.text = "Mention the beta customers."
    second = deck.slides.add_slide(deck.slide_layouts[1])
    second.shapes.title.text = "Risks"
    second.placeholders[1].text = "Supplier delays for the Kestrel sensor."
    deck.save(path)


def write_encrypted_pdf(path: Path, text: str, *, user_password: str) -> None:
    from pypdf import PdfWriter

    plain = path.with_suffix(".plain")
    write_minimal_pdf(plain, text)
    writer = PdfWriter(clone_from=plain)
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm="RC4-128")
    writer.write(path)
    plain.unlink()


def test_pptx_slides_tables_and_notes(tmp_path):
    write_pptx(tmp_path / "roadmap.pptx")
    title, text = parse_file(tmp_path / "roadmap.pptx", (tmp_path / "roadmap.pptx").read_bytes())
    assert title == "Quarterly roadmap"
    assert "Slide 1: Quarterly roadmap" in text and "Falcon release ships in March" in text
    assert "Billing | Priya" in text and "Notes: Mention the beta customers." in text
    assert text.index("Falcon") < text.index("Slide 2: Risks") < text.index("Kestrel")


def test_csv_one_document_rows_readable():
    raw = "name;days;note\nannual leave;28;per year\nsick leave;;unlimited\n".encode()
    title, text = parse_file(Path("leave.csv"), raw)
    assert title == "leave"
    assert text.splitlines() == ["name: annual leave; days: 28; note: per year", "name: sick leave; note: unlimited"]


def test_json_and_jsonl_strings_with_key_paths():
    raw = json.dumps({"title": "Office guide", "rooms": [{"name": "Harbour Hall", "seats": 40}],
                      "wifi": {"network": "guest-net"}}).encode()
    title, text = parse_file(Path("office.json"), raw)
    assert title == "Office guide"
    assert text.splitlines() == ["title: Office guide", "rooms[0].name: Harbour Hall", "wifi.network: guest-net"]
    _, text = parse_file(Path("faq.jsonl"), b'{"q": "VPN?", "a": "Tunnelwise"}\n\n{"q": "Wifi?", "a": "guest"}\n')
    assert text.splitlines() == ["[0].q: VPN?", "[0].a: Tunnelwise", "[1].q: Wifi?", "[1].a: guest"]


@pytest.mark.parametrize("raw, suffix, reason", [
    (b'{"a": [1, 2', ".json", "not valid JSON"),
    (b'{"a": "x"}\n{oops}\n', ".jsonl", "line 2 is not valid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, ".json", "JSON"),
    (b"PK\x03\x04 not really a zip", ".pptx", "not a valid PPTX"),
    (b"PK\x03\x04 not really a zip", ".docx", "not a valid DOCX"),
    (b"%PDF-1.4 this is not really a pdf", ".pdf", "not a readable PDF"),
    (random_bytes(20_000, 1), ".txt", "not text in any known encoding"),
    (b"\x00\x01binary\x00" * 100, ".md", "binary content"),
])
def test_bad_content_is_a_parse_error_with_a_reason(raw, suffix, reason):
    with pytest.raises(ParseError, match=reason):
        parse_file(Path("bad" + suffix), raw)


@pytest.mark.parametrize("raw, expected", [
    ("Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e \u00e0 l'arriv\u00e9e, re\u00e7u. " * 4, "cr\u00e8me br\u00fbl\u00e9e"),
])
def test_encodings_decode(raw, expected):
    assert expected in parse_file(Path("a.txt"), raw.encode("latin-1"))[1]
    assert expected in parse_file(Path("a.txt"), raw.encode("utf-16"))[1]  # with a byte-order mark
    assert expected in parse_file(Path("a.txt"), b"\xef\xbb\xbf" + raw.encode("utf-8"))[1]


def test_pathological_html_is_bounded():
    """Nesting deeper than a browser builds is refused in one streaming pass, before any tree is built."""
    nested = "<html><body>" + "<div>" * 100_000 + "deep text" + "</div>" * 100_000 + "</body></html>"
    start = time.perf_counter()
    with pytest.raises(ParseError, match="HTML nests elements more than 512 levels deep"):
        parse_file(Path("n.html"), nested.encode())
    assert time.perf_counter() - start < 2
    fine = "<div>" * 500 + "deep text" + "</div>" * 500 + "<p>" * 5000 + "<br>" * 5000 + "<span>x"
    assert parse_file(Path("ok.html"), fine.encode())[1].startswith("deep text")
    soup = "<p " + " ".join(f'data-a{i}="{"x" * 20}"' for i in range(100_000)) + ">attribute soup</p>"
    assert parse_file(Path("s.html"), soup.encode())[1] == "attribute soup"


def test_encrypted_pdfs(tmp_path):
    write_encrypted_pdf(tmp_path / "locked.pdf", "The vault code is 4711.", user_password="s3cret")
    with pytest.raises(ParseError, match="encrypted PDF that needs a password"):
        parse_file(tmp_path / "locked.pdf", (tmp_path / "locked.pdf").read_bytes())
    write_encrypted_pdf(tmp_path / "owner.pdf", "Printing is restricted here.", user_password="")
    assert "Printing is restricted" in parse_file(tmp_path / "owner.pdf", (tmp_path / "owner.pdf").read_bytes())[1]


def test_every_bad_file_is_reported_and_every_good_file_indexed(tmp_path, corpus):
    """One ingest over good files and every class of bad input: a report entry each, no crash."""
    write_pptx(corpus / "roadmap.pptx")
    (corpus / "leave.csv").write_text("type,days\nannual,28\n")
    (corpus / "rooms.json").write_text(json.dumps({"rooms": ["Zanzibar room on floor three"]}))
    (corpus / "utf16.txt").write_bytes("The Ostrava office opens at nine.".encode("utf-16"))
    bad = {
        "corrupt.pdf": b"%PDF-1.7\n1 0 obj << /Type /Catalog >> garbage",
        "empty.md": b"",
        "junk.txt": random_bytes(5000, 2),
        "nul.md": b"\x00\x01\x02" * 1000,
        "broken.json": b'{"rooms": [',
        "huge.txt": b"big words " * 300_000,
        "corrupt.pptx": b"PK\x03\x04nope",
        "nested.html": ("<div>" * 100_000 + "Nested notice about parking." + "</div>" * 100_000).encode(),
    }
    for name, raw in bad.items():
        (corpus / name).write_bytes(raw)
    write_encrypted_pdf(corpus / "locked.pdf", "The vault code is 4711.", user_password="s3cret")
    cfg = project_config(tmp_path, corpus)
    cfg["sources"][0]["max_file_mb"] = 2
    project = Project(load_config_dict(cfg), show_progress=False)
    report = project.ingest().to_dict()
    reasons = {Path(f["path"]).name: f["reason"] for f in report["failures"]}
    assert set(reasons) == set(bad) | {"locked.pdf"}
    assert "max_file_mb" in reasons["huge.txt"] and "the file is empty (0 bytes)" in reasons["empty.md"]
    assert "password" in reasons["locked.pdf"] and "PDF" in reasons["corrupt.pdf"]
    assert all(f["path"].startswith(str(corpus)) for f in report["failures"])
    assert report["documents"]["new"] == 9 and report["documents"]["failed"] == len(bad) + 1
    for question, doc in [("Falcon release March", "roadmap.pptx"), ("annual 28", "leave.csv"),
                          ("Zanzibar room", "rooms.json"), ("Ostrava office", "utf16.txt")]:
        hits = project.retrieve(question, principal=Principal(), k=3)
        assert any(h.doc_id == f"docs:{doc}" for h in hits), question
