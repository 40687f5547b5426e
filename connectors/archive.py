"""Safe reading of an export that comes as a folder or a zip file.

Exports (Confluence, Notion, Slack) arrive as zip files from outside the company's
control, so every entry is checked before a byte of it is used: names that climb out of
the archive (`../`, absolute paths, drive letters), symbolic links, encrypted entries and
duplicates are refused, and sizes are bounded (per entry, in total, entry count, and the
compression ratio that gives a zip bomb away). Each refused entry becomes a `LoadFailure`
with its path and reason; everything else is still read. A folder gets the same checks
(symbolic links are never followed out of it). `failures_for` lets a connector give each refused
entry the document it would have been, so that document keeps its indexed chunks.

Example:
    >>> export = Export.open("confluence-export.zip", limits=ArchiveLimits())  # doctest: +SKIP
    >>> [f.reason for f in export.failures]                                       # doctest: +SKIP
    ['path traversal: the name climbs out of the archive']
    >>> html = export.read("ENG/Deploy_65540.html")                               # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
import stat
import zipfile
import zlib
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Callable

from pydantic import Field

from framework.ingest.contract import LoadFailure, SourceConfig


class ExportSource(SourceConfig):
    """An export read from a folder or a zip file, with the bounds that stop zip bombs."""

    path: str
    max_file_mb: float = Field(default=50.0, gt=0)
    max_total_mb: float = Field(default=4096.0, gt=0)
    max_entries: int = Field(default=100_000, ge=1)
    max_compression_ratio: float = Field(default=200.0, gt=1)

MB = 1024 * 1024


class ArchiveError(ValueError):
    """The export as a whole cannot be read (missing, not a zip); nothing of it is usable."""


# What a damaged zip entry raises while it is decompressed.
READ_ERRORS = (OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError, ArchiveError)


@dataclass(frozen=True)
class ArchiveLimits:
    """Bounds that keep a hostile or broken export from exhausting memory or disk.

    `max_ratio` only applies to entries larger than `ratio_floor_bytes`: small text
    compresses well and is harmless; a bomb needs size to do damage.
    """

    max_entry_bytes: int = 50 * MB
    max_total_bytes: int = 4096 * MB
    max_entries: int = 100_000
    max_ratio: float = 200.0
    ratio_floor_bytes: int = 1 * MB

    @classmethod
    def from_config(cls, cfg) -> "ArchiveLimits":
        """From an export source config's `max_file_mb`, `max_total_mb`, `max_entries`, `max_compression_ratio`."""
        return cls(max_entry_bytes=int(cfg.max_file_mb * MB), max_total_bytes=int(cfg.max_total_mb * MB),
                   max_entries=cfg.max_entries, max_ratio=cfg.max_compression_ratio)


_DRIVE = re.compile(r"^[A-Za-z]:")


def unsafe_name_reason(name: str) -> str | None:
    """Why an entry name must not be used, or None when it stays inside the archive."""
    posix = name.replace("\\", "/")
    if posix.startswith("/") or _DRIVE.match(posix):
        return "absolute path: the name points outside the archive"
    if ".." in PurePosixPath(posix).parts:
        return "path traversal: the name climbs out of the archive"
    if "\x00" in posix:
        return "NUL character in the entry name"
    return None


def _hidden(name: str) -> bool:
    """Finder and OS litter (`__MACOSX/`, `.DS_Store`) that is never part of an export."""
    parts = PurePosixPath(name).parts
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


class Export:
    """The safe entries of one export, by `/`-separated name relative to its root."""

    def __init__(self, path: Path, *, limits: ArchiveLimits) -> None:
        self.path = path
        self.limits = limits
        self.failures: list[LoadFailure] = []
        self._refused: dict[int, str] = {}  # id of a failure -> the entry name it refuses
        self._zip: zipfile.ZipFile | None = None
        self._infos: dict[str, zipfile.ZipInfo] = {}
        self._sizes: dict[str, int] = {}
        self._over_count = 0

    @classmethod
    def open(cls, path: str | Path, *, limits: ArchiveLimits = ArchiveLimits(), key: str = "path") -> "Export":
        """Open a folder or a `.zip` file; `key` names the config key in error messages."""
        path = Path(path).expanduser()
        export = cls(path, limits=limits)
        if path.is_dir():
            export._scan_folder()
        elif path.is_file():
            try:
                export._zip = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError) as err:
                raise ArchiveError(f"{key}: {path} is neither a folder nor a readable zip file ({err}); "
                                   "export it again or unzip it and point to the folder") from None
            export._scan_zip()
        else:
            raise ArchiveError(f"{key}: {path} does not exist; point it to the export's folder or zip file")
        return export

    @property
    def names(self) -> list[str]:
        return sorted(self._sizes)

    def __contains__(self, name: str) -> bool:
        return name in self._sizes

    def size(self, name: str) -> int:
        return self._sizes[name]

    def uri(self, name: str) -> str:
        """`file:///.../export/<name>` for a folder, `file:///.../export.zip#<name>` for a zip."""
        base = self.path.resolve()
        return f"{base.as_uri()}#{name}" if self._zip is not None else (base / name).as_uri()

    def modified(self, name: str) -> str | None:
        """The entry's modification time (ISO 8601, UTC), when the export records one."""
        if self._zip is not None:
            try:
                stamp = datetime(*self._infos[name].date_time, tzinfo=timezone.utc)
            except ValueError:
                return None
        else:
            stamp = datetime.fromtimestamp((self.path / name).stat().st_mtime, tz=timezone.utc)
        return stamp.isoformat(timespec="seconds")

    def read(self, name: str) -> bytes:
        """The bytes of one accepted entry; never more than its checked size."""
        limit = self._sizes[name]
        if self._zip is None:
            with open(self.path / name, "rb") as fh:
                data = fh.read(limit + 1)
        else:
            with self._zip.open(self._infos[name]) as fh:
                data = fh.read(limit + 1)
        if len(data) > limit:
            raise ArchiveError("it grew past the size checked when the export was opened")
        return data

    def try_read(self, name: str, *, doc_id: str | None = None,
                 acl: tuple[str, ...] | None = None) -> bytes | LoadFailure:
        """`read`, with a broken entry (bad CRC, truncated, unknown compression) as a LoadFailure
        (carrying `doc_id` and `acl`, so the document the entry holds keeps its indexed chunks, under
        the ACL the config gives it now where the connector knows it)."""
        try:
            return self.read(name)
        except READ_ERRORS as err:
            cause = " ".join(str(err).split()) or type(err).__name__
            return LoadFailure(uri=self.uri(name), reason=f"the entry cannot be read ({cause}); the export may be "
                               "damaged: export it again", doc_id=doc_id, acl=acl)

    def failures_for(self, keep: Callable[[str], tuple[str | None, str | None, tuple[str, ...] | None]]
                     ) -> list[LoadFailure]:
        """The refused entries, each given `keep(name)` = (doc_id, keep_prefix, acl): what the connector would
        have made of the entry, kept in the index while the entry is refused (under `acl` if not None)."""
        out = []
        for failure in self.failures:
            name = self._refused.get(id(failure))
            doc_id, prefix, acl = keep(name) if name is not None else (None, None, None)
            out.append(replace(failure, doc_id=doc_id, keep_prefix=prefix, acl=acl) if doc_id or prefix else failure)
        return out

    def _refuse(self, name: str, reason: str) -> None:
        failure = LoadFailure(uri=self.uri(name), reason=reason)
        self._refused[id(failure)] = name
        self.failures.append(failure)

    def _accept(self, name: str, size: int, total: int) -> bool:
        """Apply the count and size limits shared by folders and zips."""
        if len(self._sizes) >= self.limits.max_entries:
            self._over_count += 1  # reported once at the end: a bomb of a million names is one entry
            return False
        if size > self.limits.max_entry_bytes:
            self._refuse(name, f"{size} bytes is over the max_file_mb limit; raise max_file_mb for this source "
                               "or leave the file out of the export")
            return False
        if total + size > self.limits.max_total_bytes:
            # Reading part of an export would delete the rest of it from the index: refuse it all.
            raise ArchiveError(f"{self.path}: the export is larger than max_total_mb "
                               f"({self.limits.max_total_bytes // MB} MB); nothing was read or changed in the "
                               "index. Raise max_total_mb for this source if the export is genuine.")
        self._sizes[name] = size
        return True

    def _report_over_count(self) -> None:
        """Too many entries aborts the source: reading some would delete the others from the index."""
        if self._over_count:
            raise ArchiveError(
                f"{self.path}: {len(self._sizes) + self._over_count} entries is over the max_entries limit "
                f"({self.limits.max_entries}); nothing was read or changed in the index. Raise max_entries for "
                "this source if the export is genuine.")
        if not self._sizes and not self.failures:
            raise ArchiveError(f"{self.path}: the export holds no files; nothing was changed in the index. "
                               "Point the source's path to the export's folder or zip file.")

    def _scan_zip(self) -> None:
        total = 0
        for info in self._zip.infolist():
            name = info.filename.replace("\\", "/")
            reason = unsafe_name_reason(info.filename)
            if reason:
                self._refuse(info.filename, reason)
                continue
            if info.is_dir() or _hidden(name):
                continue
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                reason = "symbolic link in the archive; never followed"
            elif info.flag_bits & 0x1:
                reason = "encrypted entry; export again without a password"
            elif name in self._sizes:
                reason = "duplicate entry name; only the first is read"
            elif (info.file_size > self.limits.ratio_floor_bytes
                  and info.file_size > self.limits.max_ratio * max(info.compress_size, 1)):
                reason = (f"compression ratio {info.file_size / max(info.compress_size, 1):.0f}:1 is over "
                          f"max_compression_ratio ({self.limits.max_ratio:g}); looks like a zip bomb")
            if reason:
                self._refuse(name, reason)
                continue
            if self._accept(name, info.file_size, total):
                self._infos[name] = info
                total += info.file_size
        self._report_over_count()

    def _scan_folder(self) -> None:
        total = 0
        def unreadable(err: OSError) -> None:
            self.failures.append(LoadFailure(uri=Path(err.filename or self.path).resolve().as_uri(),
                                             reason=f"cannot list the folder: {err.strerror or err}"))

        for dirpath, dirnames, filenames in os.walk(self.path, onerror=unreadable, followlinks=False):
            rel_dir = Path(dirpath).relative_to(self.path)
            for d in sorted(dirnames):
                if (Path(dirpath) / d).is_symlink():
                    self._refuse((rel_dir / d).as_posix(), "symbolic link to a folder; never followed")
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and not (Path(dirpath) / d).is_symlink())
            for f in sorted(filenames):
                name = (rel_dir / f).as_posix()
                if _hidden(name):
                    continue
                full = Path(dirpath) / f
                if full.is_symlink():
                    self._refuse(name, "symbolic link; never followed")
                    continue
                try:
                    size = full.stat().st_size
                except OSError as err:
                    self._refuse(name, f"cannot read: {err.strerror or err}")
                    continue
                if self._accept(name, size, total):
                    total += size
        self._report_over_count()


def export_root(names: list[str], marker: str) -> str | None:
    """The folder (`""` or `"SPACE/"`) holding the shallowest entry called `marker`.

    Zips made by hand often wrap the export in one top folder; this finds it.
    """
    hits = [n for n in names if PurePosixPath(n).name == marker]
    if not hits:
        return None
    best = min(hits, key=lambda n: (n.count("/"), n))
    return best[: -len(marker)]
