"""Over a folder of bad files, every report reason names its file once, the cause once and what to do,
and parser warnings land in the file's report entry instead of on the terminal."""

import io
import re
import time
import zipfile

import pytest
from conftest import project_config, write_minimal_pdf

from framework.project import Project, load_config_dict

ACTIONS = ("exclude", "save it again", "export", "delete it", "fix", "raise", "run OCR")


def _docx(xml: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", xml)
    return buf.getvalue()


def _bad_folder(root):
    root.mkdir()
    write_minimal_pdf(root / "good.pdf", "The Crumb plan costs 9 EUR per month.")
    pdf = (root / "good.pdf").read_bytes()
    m = re.search(rb"startxref\n(\d+)", pdf)  # a wrong xref pointer: pypdf recovers, with warnings
    (root / "shifted.pdf").write_bytes(pdf[:m.start(1)] + str(int(m.group(1)) + 7).encode() + pdf[m.end(1):])
    (root / "truncated.pdf").write_bytes(pdf[: len(pdf) // 2])
    (root / "unbound.docx").write_bytes(_docx("<w:document><w:body><w:p><w:r><w:t>hi</w:t></w:r></w:p></w:body>"
                                              "</w:document>"))
    (root / "scripts.html").write_text("<html><head><script>var a = 1;</script><style>p {}</style></head>"
                                       "<body><script>track()</script></body></html>")
    (root / "nested.html").write_text("<div>" * 95_000 + "deep" + "</div>" * 95_000)
    (root / "empty.md").write_bytes(b"")
    (root / "junk.txt").write_bytes(b"\x00\x9f\x01" * 400)
    (root / "broken.json").write_text('{"rooms": [')
    (root / "zipped.pptx").write_bytes(b"PK\x03\x04 not a zip")
    return root


@pytest.mark.parametrize("workers", [0, 1])
def test_every_reason_names_its_file_once_with_one_cause_and_a_fix(tmp_path, capfd, workers):
    folder = _bad_folder(tmp_path / "bad")
    cfg = project_config(tmp_path, folder, ingest={"parse_workers": workers})
    start = time.perf_counter()
    report = Project(load_config_dict(cfg), show_progress=False).ingest().to_dict()
    assert time.perf_counter() - start < 30
    reasons = {f["path"].rsplit("/", 1)[1]: f for f in report["failures"]}
    assert set(reasons) == {"truncated.pdf", "unbound.docx", "scripts.html", "nested.html", "empty.md", "junk.txt",
                            "broken.json", "zipped.pptx"}
    for name, entry in reasons.items():
        reason = entry["reason"]
        assert reason.startswith(f"{folder / name}: ") and reason.count(name) == 1, reason
        assert not re.search(r"\b\w*(Error|Exception)\b", reason), reason  # the cause in words, not class names
        assert any(a in reason for a in ACTIONS), reason
    assert "unbound prefix" in reasons["unbound.docx"]["reason"]
    assert "scripts" in reasons["scripts.html"]["reason"] and "OCR" not in reasons["scripts.html"]["reason"]
    assert "scanned" not in reasons["scripts.html"]["reason"]
    assert "512 levels" in reasons["nested.html"]["reason"]
    assert any("EOF marker not found" in w for w in reasons["truncated.pdf"]["warnings"])
    [warned] = report["warnings"]
    assert warned["path"].endswith("shifted.pdf") and any("startxref" in w for w in warned["warnings"])
    printed = capfd.readouterr()
    assert "EOF marker" not in printed.err + printed.out and "startxref" not in printed.err + printed.out
