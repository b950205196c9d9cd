"""Deterministic project archives and a safe extractor.

`build_archive` turns a DAG folder into a tar.gz whose bytes depend only on file names and
contents (sorted entries, fixed mtime/owner/mode, no gzip timestamp), so the same folder always has
the same sha256. `iter_members` is the only way dagsync reads an archive: it yields regular files
and folders that stay inside the project and refuses everything else, within size and count limits.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import posixpath
import stat
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

# What a project folder may never carry into an archive.
SKIP_DIRS = frozenset({"__pycache__", ".git", ".hg", ".svn", ".venv", ".mypy_cache", ".pytest_cache"})
SKIP_SUFFIXES = (".pyc", ".pyo")


class UnsafeArchive(ValueError):
    """The archive holds something dagsync refuses to extract. The message names the entry and why."""


@dataclass(frozen=True)
class Limits:
    max_compressed_bytes: int = 50 * 1024 * 1024
    max_uncompressed_bytes: int = 200 * 1024 * 1024
    max_files: int = 10_000
    max_file_bytes: int = 20 * 1024 * 1024
    max_path_length: int = 512


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class BuiltArchive:
    data: bytes
    sha256: str
    files: int
    uncompressed_size: int

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class Member:
    name: str  # normalized relative POSIX path
    is_dir: bool
    data: bytes  # empty for folders


def _project_files(root: Path) -> list[tuple[str, Path]]:
    """Every file and folder under root as (relative posix name, path), sorted; refuses links."""
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder")
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        base = Path(dirpath)
        for name in dirnames + sorted(filenames):
            path = base / name
            rel = path.relative_to(root).as_posix()
            if name.endswith(SKIP_SUFFIXES):
                continue
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                raise UnsafeArchive(f"{rel}: symbolic links are not published; copy the file instead")
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise UnsafeArchive(f"{rel}: only regular files and folders are published")
            found.append((rel, path))
    return sorted(found)


def build_archive(root: Path, limits: Limits = DEFAULT_LIMITS) -> BuiltArchive:
    buf = io.BytesIO()
    files = 0
    total = 0
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for rel, path in _project_files(root):
            info = tarfile.TarInfo(rel)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if path.is_dir():
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
                continue
            data = path.read_bytes()
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
            files += 1
            total += len(data)
    if files == 0:
        raise UnsafeArchive(f"{root} holds no files to publish")
    data = buf.getvalue()
    # Check what we built with the same rules every host will apply.
    for _ in iter_members(io.BytesIO(data), limits):
        pass
    return BuiltArchive(data=data, sha256=hashlib.sha256(data).hexdigest(), files=files, uncompressed_size=total)


def _safe_name(raw: str, limits: Limits) -> str:
    if "\x00" in raw or any(0xDC80 <= ord(c) <= 0xDCFF for c in raw):
        raise UnsafeArchive(f"{raw!r}: entry names must be valid UTF-8")
    if len(raw) > limits.max_path_length:
        raise UnsafeArchive(f"{raw[:60]!r}...: entry name longer than {limits.max_path_length}")
    if raw.startswith("/") or raw.startswith("\\") or (len(raw) > 1 and raw[1] == ":"):
        raise UnsafeArchive(f"{raw!r}: absolute paths are not allowed")
    if "\\" in raw:
        raise UnsafeArchive(f"{raw!r}: backslashes are not allowed in entry names")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if not parts:
        raise UnsafeArchive(f"{raw!r}: empty entry name")
    if ".." in parts:
        raise UnsafeArchive(f"{raw!r}: '..' would leave the project folder")
    if "__pycache__" in parts or parts[-1].endswith(SKIP_SUFFIXES):
        # Python would import this bytecode instead of (or without) the source the validator checked.
        raise UnsafeArchive(f"{raw!r}: compiled bytecode is not published; ship the .py source")
    return posixpath.join(*parts)


def _check_file(info: tarfile.TarInfo, name: str, limits: Limits) -> None:
    if info.issym() or info.islnk():
        raise UnsafeArchive(f"{name!r}: links are not allowed (target {info.linkname!r})")
    if not info.isreg():
        raise UnsafeArchive(f"{name!r}: only regular files and folders are allowed")
    if info.mode & (stat.S_ISUID | stat.S_ISGID):
        raise UnsafeArchive(f"{name!r}: setuid/setgid bits are not allowed")
    if info.size > limits.max_file_bytes:
        raise UnsafeArchive(f"{name!r}: {info.size} bytes is over the per-file limit of {limits.max_file_bytes}")


class _CappedReader(io.RawIOBase):
    """The decompressed stream, refused past `cap` bytes: tar headers (PAX records included) are read into
    memory by tarfile, so the cap bounds memory whatever a compressed bomb claims."""

    def __init__(self, raw: gzip.GzipFile, cap: int) -> None:
        self.raw = raw
        self.cap = cap
        self.seen = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk = self.raw.read(size if size >= 0 else 1 << 20)
        self.seen += len(chunk)
        if self.seen > self.cap:
            raise UnsafeArchive(f"decompresses to more than {self.cap} bytes")
        return chunk


def _stream_cap(limits: Limits) -> int:
    # contents + a generous allowance per entry for headers and padding
    return limits.max_uncompressed_bytes + 4096 * 2 * limits.max_files + (1 << 20)


class _Tree:
    """Names seen so far: refuses duplicates and a file used as a folder (or a folder as a file), which
    would fail half-way through an extraction on every host."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.files: set[str] = set()
        self.dirs: set[str] = set()

    def add(self, name: str, is_dir: bool) -> None:
        if name in self.files or (not is_dir and name in self.dirs):
            raise UnsafeArchive(f"{name!r}: duplicate entry")
        parent = posixpath.dirname(name)
        while parent:
            if parent in self.files:
                raise UnsafeArchive(f"{name!r}: {parent!r} is a file, not a folder")
            self.dirs.add(parent)
            parent = posixpath.dirname(parent)
        (self.dirs if is_dir else self.files).add(name)
        if len(self.dirs) > self.limits.max_files:
            raise UnsafeArchive(f"more than {self.limits.max_files} folders")


def iter_members(fileobj: BinaryIO, limits: Limits = DEFAULT_LIMITS) -> Iterator[Member]:
    """Stream the archive once, yielding only safe members; raise UnsafeArchive on the first bad one."""
    tree = _Tree(limits)
    files = 0
    total = 0
    try:
        with (
            gzip.GzipFile(fileobj=fileobj, mode="rb") as gz,
            tarfile.open(fileobj=_CappedReader(gz, _stream_cap(limits)), mode="r|") as tar,
        ):
            for info in tar:
                if info.isdir() and info.name.strip("/") in ("", "."):
                    continue  # the root entry `tar -C dir .` writes: the project folder itself
                name = _safe_name(info.name, limits)
                if info.isdir():
                    tree.add(name, is_dir=True)
                    yield Member(name=name, is_dir=True, data=b"")
                    continue
                _check_file(info, name, limits)
                tree.add(name, is_dir=False)
                files += 1
                total += info.size
                if files > limits.max_files:
                    raise UnsafeArchive(f"more than {limits.max_files} files")
                if total > limits.max_uncompressed_bytes:
                    raise UnsafeArchive(f"uncompressed size over {limits.max_uncompressed_bytes} bytes")
                extracted = tar.extractfile(info)
                data = extracted.read() if extracted else b""
                if len(data) != info.size:
                    raise UnsafeArchive(f"{name!r}: truncated entry")
                yield Member(name=name, is_dir=False, data=data)
    except UnsafeArchive:
        raise
    except (tarfile.TarError, EOFError, OSError, UnicodeError, zlib.error) as exc:
        raise UnsafeArchive(f"not a readable tar.gz archive: {exc}") from None
    if files == 0:
        raise UnsafeArchive("the archive holds no files")


def extract(fileobj: BinaryIO, dest: Path, limits: Limits = DEFAULT_LIMITS) -> int:
    """Extract into `dest`, which must not exist yet (it is created). Returns the number of files.

    Writes only below `dest`, creates files with O_EXCL and fixed modes, and fsyncs every file and
    folder so that a later rename of `dest` publishes durable content."""
    dest.mkdir(mode=0o755)
    root = dest.resolve()
    count = 0
    dirs: set[Path] = {root}
    for member in iter_members(fileobj, limits):
        target = root / member.name
        if member.is_dir:
            target.mkdir(mode=0o755, parents=True, exist_ok=True)
            dirs.add(target)
            continue
        target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        dirs.add(target.parent)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(member.data)
            fh.flush()
            os.fsync(fh.fileno())
        count += 1
    for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
        fsync_dir(d)
    return count


def write_atomic(path: Path, data: bytes, tmp: Path | None = None) -> None:
    """Write a temp file beside `path` (default `<name>.tmp`), fsync it, os.replace it over `path`, fsync the
    folder: a reader (or a crash) sees the old file or the new one, never a part."""
    tmp = tmp or path.with_name(path.name + ".tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
