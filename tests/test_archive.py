import os
import stat
import zipfile

import pytest
from export_zips import ASSETS, zip_folder

from connectors.archive import ArchiveError, ArchiveLimits, Export, export_root, unsafe_name_reason

MB = 1024 * 1024


def _reasons(export):
    return {f.uri.split("#", 1)[-1]: f.reason for f in export.failures}


def test_folder_and_zip_give_the_same_entries_and_bytes(tmp_path):
    folder = ASSETS / "confluence"
    a = Export.open(folder)
    b = Export.open(zip_folder(folder, tmp_path / "c.zip"))
    assert a.names == b.names and "HENG/Deploy-checklist_65539.html" in a.names
    assert all(a.read(n) == b.read(n) for n in a.names)
    assert not a.failures and not b.failures
    assert b.uri("HENG/index.html").endswith("c.zip#HENG/index.html")
    assert b.modified("HENG/index.html")[:4] >= "1980"


@pytest.mark.parametrize("name,reason", [
    ("../evil.txt", "path traversal"), ("docs/../../evil.txt", "path traversal"),
    ("..\\..\\evil.txt", "path traversal"), ("/etc/cron.d/evil", "absolute path"), ("C:/evil.txt", "absolute path"),
])
def test_unsafe_names_are_refused(name, reason):
    assert reason in unsafe_name_reason(name)


def test_traversal_symlink_and_duplicate_entries_are_refused_and_the_rest_read(tmp_path):
    target = tmp_path / "x.zip"
    with zipfile.ZipFile(target, "w") as z:
        z.writestr("ok/readme.txt", "fine")
        z.writestr("../../outside.txt", "escape")
        z.writestr("/abs.txt", "absolute")
        link = zipfile.ZipInfo("ok/link.txt")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        z.writestr(link, "/etc/passwd")
        with pytest.warns(UserWarning, match="Duplicate name"):
            z.writestr("ok/readme.txt", "second copy")
        z.writestr("__MACOSX/ok/._readme.txt", "resource fork")
    export = Export.open(target)
    assert export.names == ["ok/readme.txt"] and export.read("ok/readme.txt") == b"fine"
    reasons = _reasons(export)
    assert "path traversal" in reasons["../../outside.txt"]
    assert "absolute path" in reasons["/abs.txt"]
    assert "symbolic link" in reasons["ok/link.txt"]
    assert "duplicate" in reasons["ok/readme.txt"]
    assert len(reasons) == 4


def test_zip_bomb_and_size_limits_are_refused(tmp_path):
    target = tmp_path / "bomb.zip"
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("bomb.txt", b"\0" * (8 * MB))
        z.writestr("big.txt", os.urandom(3 * MB), compress_type=zipfile.ZIP_STORED)
        z.writestr("a.txt", "small text " * 2000)
        z.writestr("b.txt", "b")
    export = Export.open(target, limits=ArchiveLimits(max_entry_bytes=2 * MB, max_total_bytes=20 * MB))
    reasons = _reasons(export)
    assert "zip bomb" in reasons["bomb.txt"] and "max_compression_ratio" in reasons["bomb.txt"]
    assert "max_file_mb" in reasons["big.txt"]
    assert export.names == ["a.txt", "b.txt"]
    with pytest.raises(ArchiveError, match="larger than max_total_mb"):
        Export.open(target, limits=ArchiveLimits(max_total_bytes=10, max_ratio=1e9))


def test_entry_count_limit_aborts_the_source_instead_of_reading_part_of_it(tmp_path):
    target = tmp_path / "many.zip"
    with zipfile.ZipFile(target, "w") as z:
        for i in range(50):
            z.writestr(f"f{i:02d}.txt", "x")
    with pytest.raises(ArchiveError, match=r"50 entries is over the max_entries limit \(10\)"):
        Export.open(target, limits=ArchiveLimits(max_entries=10))
    assert len(Export.open(target, limits=ArchiveLimits(max_entries=50)).names) == 50


def test_empty_export_aborts_the_source(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArchiveError, match="holds no files"):
        Export.open(tmp_path / "empty")


def test_corrupt_entry_is_a_failure_not_a_crash(tmp_path):
    target = tmp_path / "crc.zip"
    with zipfile.ZipFile(target, "w") as z:
        z.writestr("page.txt", b"Every deploy needs a ticket.", compress_type=zipfile.ZIP_STORED)
    data = bytearray(target.read_bytes())
    at = data.index(b"Every")
    data[at] = ord("X")
    target.write_bytes(bytes(data))
    result = Export.open(target).try_read("page.txt")
    assert "Bad CRC" in result.reason and result.uri.endswith("crc.zip#page.txt")


def test_folder_symlinks_are_never_followed(tmp_path):
    root = tmp_path / "export"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "page.txt").write_text("inside")
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key.txt").write_text("outside")
    os.symlink(secret / "key.txt", root / "key.txt")
    os.symlink(secret, root / "linked")
    export = Export.open(root)
    assert export.names == ["sub/page.txt"]
    reasons = {f.uri.rsplit("/", 1)[1]: f.reason for f in export.failures}
    assert "symbolic link" in reasons["key.txt"] and "folder" in reasons["linked"]


def test_missing_and_non_zip_paths_are_clear_errors(tmp_path):
    with pytest.raises(ArchiveError, match="does not exist"):
        Export.open(tmp_path / "nope.zip", key="sources.wiki.path")
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(ArchiveError, match="sources.wiki.path: .* neither a folder nor a readable zip"):
        Export.open(junk, key="sources.wiki.path")


def test_export_root_finds_the_wrapping_folder():
    assert export_root(["SPACE/index.html", "SPACE/a/index.html", "x.css"], "index.html") == "SPACE/"
    assert export_root(["users.json", "general/2026-01-01.json"], "users.json") == ""
    assert export_root(["a.txt"], "users.json") is None
