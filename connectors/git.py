"""Git connector: the text files of a local clone, as committed at HEAD (or another ref).

Reads: a local clone, through the `git` command (`ls-tree`, `log`, `cat-file --batch`).
Files come from the commit, never from the working tree, so uncommitted edits and
`.gitignore`d files are never indexed; `include`/`exclude` globs narrow the selection.
Document id: `<source name>:<path in the repository>`. Content hash: the git blob id, so an
unchanged file costs nothing: not even its bytes are read.
Metadata: `commit` (the ref's commit), and per file the last commit that changed it, its
committer date (`updated_at`) and author.
ACL: every file gets the source's groups plus those of each matching `acl_paths:` pattern
(see framework.ingest.acl). Binary blobs, symbolic links' targets and submodules are not text:
binaries are reported, links and submodules skipped.

Example:
    >>> conn = GitConnector(name="platform", repo="~/src/platform", acl=("engineering",))  # doctest: +SKIP
    >>> docs = [item.read() for item in conn.scan() if hasattr(item, "read")]             # doctest: +SKIP
"""

from __future__ import annotations

import fnmatch
import os
import subprocess
import tempfile
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterator, Literal, Union

from pydantic import Field, field_validator

from connectors.files import SUPPORTED, ParseError, decode_text, parse_file
from framework.ingest.acl import AclPolicy
from framework.ingest.contract import LoadFailure, SourceConfig, SourceItem, check_template
from framework.records import Document


class GitSource(SourceConfig):
    """A local git clone: text files as committed at `ref` (see connectors/git.py)."""

    type: Literal["git"]
    path: str
    ref: str = "HEAD"
    include: list[str] = ["**/*"]
    exclude: list[str] = []
    max_file_mb: float = Field(default=5.0, gt=0)
    uri_template: str | None = None

    @field_validator("uri_template")
    @classmethod
    def _uri_fields(cls, value: str | None) -> str | None:
        check_template(value, allowed={"commit", "path"})
        return value

# Suffixes that are never text: reported at scan time without reading their bytes.
BINARY_SUFFIXES = {
    ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".ico", ".webp", ".tif", ".tiff", ".psd",
    ".zip", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".jar", ".war", ".whl",
    ".exe", ".dll", ".so", ".dylib", ".a", ".o", ".class", ".pyc", ".bin", ".dat",
    ".woff", ".woff2", ".ttf", ".otf", ".eot", ".mp3", ".mp4", ".mov", ".avi", ".wav", ".ogg",
    ".sqlite", ".db", ".parquet", ".npy", ".pt", ".onnx", ".safetensors", ".xlsx", ".pptx",
}
_SNIFF = 8000  # git's own binary test: a NUL byte in the first 8000 bytes


class GitError(RuntimeError):
    """A git command failed; the message carries git's own words."""


@dataclass(frozen=True)
class FileCommit:
    commit: str
    date: str
    author: str
    email: str


class GitConnector:
    schema = GitSource

    @classmethod
    def from_config(cls, cfg: GitSource) -> "GitConnector":
        """Build from the validated `sources:` entry (see docs/connectors/git.md)."""
        return cls(name=cfg.name, repo=cfg.path, ref=cfg.ref, include=tuple(cfg.include),
                   exclude=tuple(cfg.exclude), acl=AclPolicy.from_config(cfg),
                   max_bytes=int(cfg.max_file_mb * 1024 * 1024), uri_template=cfg.uri_template)

    def __init__(self, *, name: str, repo: str | Path, ref: str = "HEAD", include: tuple[str, ...] = ("**/*",),
                 exclude: tuple[str, ...] = (), acl: AclPolicy | tuple[str, ...] = (),
                 max_bytes: int = 5 * 2**20, uri_template: str | None = None) -> None:
        self.name = name
        self.repo = Path(repo).expanduser()
        self.ref = ref
        self.include = include
        self.exclude = exclude
        self.acl = acl if isinstance(acl, AclPolicy) else AclPolicy(groups=tuple(acl))
        self.max_bytes = max_bytes
        self.uri_template = uri_template
        self._blobs: _BlobReader | None = None

    def scan(self) -> Iterator[Union[SourceItem, LoadFailure]]:
        commit = self._resolve_commit()
        entries = [e for e in self._tree(commit) if self._selected(e[3])]
        history = last_commits(self.repo, commit, {e[3] for e in entries})
        for mode, blob, size, path in entries:
            uri = self._uri(commit, path)
            if mode == "160000" or mode == "120000":
                continue  # submodule or symbolic link: no text of its own
            if PurePosixPath(path).suffix.lower() in BINARY_SUFFIXES:
                yield LoadFailure(uri=uri, reason="binary file type; add it to `exclude:` to silence this")
                continue
            if size > self.max_bytes:
                yield LoadFailure(uri=uri, reason=f"{size} bytes is over the source's max_file_mb limit",
                                  doc_id=f"{self.name}:{path}", acl=self.acl.for_path(path))
                continue
            yield self._item(commit, blob, path, uri, history.get(path))

    def close(self) -> None:
        """Stop the background `git cat-file` process (also done when the connector is collected)."""
        if self._blobs is not None:
            self._blobs.close()
            self._blobs = None

    # -- listing ----------------------------------------------------------------------------
    def _resolve_commit(self) -> str:
        if not self.repo.is_dir():
            raise FileNotFoundError(f"sources.{self.name}.path: folder {self.repo} does not exist")
        try:
            return _git(self.repo, "rev-parse", "--verify", "--end-of-options", f"{self.ref}^{{commit}}").strip()
        except GitError as err:
            raise GitError(f"sources.{self.name}: {self.repo} has no commit at ref {self.ref!r} "
                           f"(is it a git clone with at least one commit?): {err}") from None

    def _tree(self, commit: str) -> list[tuple[str, str, int, str]]:
        """(mode, blob id, size, path) of every file in the commit."""
        out = _git(self.repo, "ls-tree", "-r", "-z", "--long", "--full-tree", commit)
        entries = []
        for record in out.split("\0"):
            if not record:
                continue
            meta, path = record.split("\t", 1)
            mode, kind, blob, size = meta.split()
            entries.append((mode, blob, int(size) if size.isdigit() else 0, path))
        return entries

    def _selected(self, path: str) -> bool:
        def match(pattern: str) -> bool:
            return fnmatch.fnmatch(path, pattern) or (pattern.startswith("**/") and fnmatch.fnmatch(path, pattern[3:]))

        return any(match(p) for p in self.include) and not any(match(p) for p in self.exclude)

    def _uri(self, commit: str, path: str) -> str:
        if self.uri_template:
            return self.uri_template.format(commit=commit, path=path)
        return (self.repo.resolve() / path).as_uri()

    # -- one file ---------------------------------------------------------------------------
    def _item(self, commit: str, blob: str, path: str, uri: str, last: FileCommit | None) -> SourceItem:
        doc_id = f"{self.name}:{path}"
        acl = self.acl.for_path(path)
        metadata = {"path": path, "commit": commit, "blob": blob}
        if last is not None:
            metadata.update(last_commit=last.commit, author=last.author, author_email=last.email)

        def read() -> Document:
            title, text = parse_blob(path, self._reader().read(blob))
            return Document(id=doc_id, text=text, source=self.name, uri=uri, title=title, content_hash=blob,
                            acl=acl, updated_at=last.date if last else None, metadata=metadata)

        return SourceItem(doc_id=doc_id, uri=uri, content_hash=blob, read=read, acl=acl)

    def _reader(self) -> "_BlobReader":
        # A forked parse worker starts its own process: pipes shared with the parent would interleave.
        if self._blobs is None or self._blobs.pid != os.getpid():
            self._blobs = _BlobReader(self.repo)
            weakref.finalize(self, self._blobs.close)
        return self._blobs


def parse_blob(path: str, raw: bytes) -> tuple[str, str]:
    """(title, text) of one committed file: Markdown/HTML/PDF/DOCX as the files connector parses them."""
    if not raw.strip():
        raise ParseError("the file is empty in this commit; commit its text, or delete or exclude it")
    suffix = PurePosixPath(path).suffix.lower()
    if suffix in {".pdf", ".docx"}:
        with tempfile.TemporaryDirectory() as tmp:  # the LlamaIndex readers want a file on disk
            copy = Path(tmp) / f"blob{suffix}"
            copy.write_bytes(raw)
            _, text = parse_file(copy, raw)
        return PurePosixPath(path).stem, text
    if b"\0" in raw[:_SNIFF]:
        raise ParseError("binary blob (NUL bytes, as git itself decides); add it to `exclude:` to silence this")
    if suffix in SUPPORTED:
        return parse_file(Path(path), raw)
    return PurePosixPath(path).name, decode_text(raw).strip()


def last_commits(repo: Path, commit: str, paths: set[str]) -> dict[str, FileCommit]:
    """The last commit that changed each path, from one walk of the history.

    The walk stops as soon as every path is accounted for, so a file changed recently in a
    long history costs little.
    """
    found: dict[str, FileCommit] = {}
    if not paths:
        return found
    cmd = ["git", "-C", str(repo), "log", "-z", "--no-renames", "--name-only",
           "--format=%x1e%H%x1f%cI%x1f%an%x1f%ae", commit, "--"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    buffer = b""
    try:
        while len(found) < len(paths):
            chunk = proc.stdout.read(1 << 16)
            buffer += chunk
            records = buffer.split(b"\x1e")
            buffer = records.pop() if chunk else b""
            for record in records:
                _assign(record, paths, found)
            if not chunk:
                break
    finally:
        proc.kill()
        proc.stdout.close()
        proc.wait()
    return found


def _assign(record: bytes, paths: set[str], found: dict[str, FileCommit]) -> None:
    if not record:
        return
    header, _, names = record.partition(b"\0")
    commit, date, author, email = os.fsdecode(header).split("\x1f")
    info = FileCommit(commit=commit, date=date, author=author, email=email)
    for name in names.lstrip(b"\n").split(b"\0"):
        path = os.fsdecode(name)
        if path in paths and path not in found:
            found[path] = info


class _BlobReader:
    """One `git cat-file --batch` process serving every blob read of an ingest run (thread-safe)."""

    def __init__(self, repo: Path) -> None:
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.proc = subprocess.Popen(["git", "-C", str(repo), "cat-file", "--batch"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    def read(self, blob: str) -> bytes:
        with self.lock:
            self.proc.stdin.write(blob.encode() + b"\n")
            self.proc.stdin.flush()
            header = self.proc.stdout.readline().decode().split()
            if len(header) != 3:
                raise GitError(f"git cat-file could not read blob {blob}: {' '.join(header) or 'no answer'}")
            data = self.proc.stdout.read(int(header[2]))
            self.proc.stdout.read(1)  # the newline after each object
            return data

    def close(self) -> None:
        if self.pid != os.getpid():
            return  # a forked copy: the process belongs to the parent
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        self.proc.wait(timeout=10)
        self.proc.stdout.close()


def _git(repo: Path, *args: str) -> str:
    try:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=True)
    except FileNotFoundError:
        raise GitError("the `git` command is not installed; install git to read repositories") from None
    except subprocess.CalledProcessError as err:
        raise GitError(os.fsdecode(err.stderr).strip() or f"git {args[0]} failed") from None
    return os.fsdecode(done.stdout)
