"""Build export zips from the asset folders, so no binary zip is committed."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"


def zip_folder(folder: Path, target: Path, extra: dict[str, bytes] | None = None) -> Path:
    """Zip every file under `folder` (names relative to it), then add `extra` entries as given."""
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            z.write(path, path.relative_to(folder).as_posix())
        for name, data in (extra or {}).items():
            z.writestr(zipfile.ZipInfo(name, date_time=(2026, 11, 2, 9, 0, 0)), data, zipfile.ZIP_DEFLATED)
    return target


def copy_asset(name: str, tmp_path: Path) -> Path:
    """A writable copy of one asset export, for tests that add or break entries."""
    return Path(shutil.copytree(ASSETS / name, tmp_path / name))
