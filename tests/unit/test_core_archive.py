"""Deterministic archives and the safe extractor."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from dagsync.core.archive import Limits, UnsafeArchive, build_archive, extract, iter_members
from tests.support.projects import EXAMPLES
from tests.support.tars import Entry, member, tar_gz


def file(name: str, data: bytes = b"x = 1\n", mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    return member(name, mode=mode), data


def special(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    return member(name, kind, linkname=linkname)


def test_same_folder_gives_the_same_bytes_whatever_the_mtimes_and_order(tmp_path: Path) -> None:
    copy_a, copy_b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(EXAMPLES / "finance", copy_a)
    shutil.copytree(EXAMPLES / "finance", copy_b)
    for path in copy_b.rglob("*"):
        os.utime(path, (1, 1))
    (copy_b / "__pycache__").mkdir()
    (copy_b / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"junk")
    a, b = build_archive(copy_a), build_archive(copy_b)
    assert a.data == b.data and a.sha256 == b.sha256
    assert a.files == 3


def test_a_changed_byte_changes_the_checksum(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES / "sales", tmp_path / "s")
    before = build_archive(tmp_path / "s").sha256
    (tmp_path / "s" / "sales_refunds.py").write_text("# changed\n")
    assert build_archive(tmp_path / "s").sha256 != before


def test_symlinks_in_a_project_are_refused_at_build(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "dag.py").write_text("x = 1\n")
    (tmp_path / "p" / "secret.py").symlink_to("/etc/passwd")
    with pytest.raises(UnsafeArchive, match="symbolic links"):
        build_archive(tmp_path / "p")


def test_an_empty_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    with pytest.raises(UnsafeArchive, match="no files"):
        build_archive(tmp_path / "p")


def test_extract_writes_the_tree_with_fixed_modes(tmp_path: Path) -> None:
    built = build_archive(EXAMPLES / "finance")
    dest = tmp_path / "out"
    assert extract(io.BytesIO(built.data), dest) == 3
    assert (dest / "finance_lib" / "__init__.py").read_bytes() == (
        EXAMPLES / "finance" / "finance_lib" / "__init__.py"
    ).read_bytes()
    assert oct((dest / "month_end_close.py").stat().st_mode & 0o7777) == "0o644"


@pytest.mark.parametrize(
    ("entries", "reason"),
    [
        ([file("/etc/cron.d/x")], "absolute paths"),
        ([file("../../escape.py")], r"'\.\.'"),
        ([file("dags/../../escape.py")], r"'\.\.'"),
        ([file("ok.py"), special("link.py", tarfile.SYMTYPE, "/etc/passwd")], "links are not allowed"),
        ([file("ok.py"), special("hard.py", tarfile.LNKTYPE, "ok.py")], "links are not allowed"),
        ([special("dev", tarfile.CHRTYPE)], "only regular files"),
        ([special("fifo", tarfile.FIFOTYPE)], "only regular files"),
        ([file("run.sh", mode=0o4755)], "setuid"),
        ([file("a.py"), file("a.py")], "duplicate"),
        ([file("C:\\evil.py")], "absolute|backslash"),
        ([file("x" * 600)], "longer than"),
    ],
)
def test_unsafe_entries_are_refused_and_nothing_escapes(
    tmp_path: Path, entries: list[Entry], reason: str
) -> None:
    dest = tmp_path / "store" / "tree"
    dest.parent.mkdir()
    with pytest.raises(UnsafeArchive, match=reason):
        extract(io.BytesIO(tar_gz(*entries)), dest)
    outside = [p for p in tmp_path.rglob("*") if not str(p).startswith(str(tmp_path / "store"))]
    assert outside == []


def test_limits_on_count_and_size_are_enforced() -> None:
    many = tar_gz(*[file(f"f{i}.py") for i in range(11)])
    with pytest.raises(UnsafeArchive, match="more than 10 files"):
        list(iter_members(io.BytesIO(many), Limits(max_files=10)))
    big = tar_gz(file("big.py", b"0" * 5000))
    with pytest.raises(UnsafeArchive, match="per-file limit"):
        list(iter_members(io.BytesIO(big), Limits(max_file_bytes=4096)))
    with pytest.raises(UnsafeArchive, match="uncompressed size"):
        list(iter_members(io.BytesIO(big), Limits(max_uncompressed_bytes=4096)))


@pytest.mark.parametrize("data", [b"", b"not a tarball", build_archive(EXAMPLES / "sales").data[:100]])
def test_garbage_and_truncated_archives_are_refused(data: bytes) -> None:
    with pytest.raises(UnsafeArchive, match="not a readable|truncated|no files"):
        list(iter_members(io.BytesIO(data)))
