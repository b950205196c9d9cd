"""Hostile archives, built by hand with tarfile/gzip (never with dagsync's own builder), and what each must be
refused for. Shared by the archive, validator and agent suites."""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass

from tests.support.tars import member, tar, tar_gz

GOOD_DAG = b"from airflow.sdk import DAG\n\nwith DAG(dag_id='evil_dag'):\n    pass\n"


def _file(name: str, data: bytes = GOOD_DAG, mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    return member(name, mode=mode, size=len(data)), data


def _special(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    return member(name, kind, linkname=linkname)


def _bomb() -> bytes:
    """~16 MB of zeros per file, 14 files: a few hundred KB compressed, 224 MB unpacked (limit: 200 MB)."""
    zeros = bytes(16 * 1024 * 1024)
    return tar_gz(_file("dag.py"), *(_file(f"blob{i}.bin", zeros) for i in range(14)), level=1)


def _claimed_huge() -> bytes:
    """A header claiming a 1 GB file with no data behind it: refused before anything is read. (tarfile will not
    write a header without its data, so this one is spliced in by hand before the end-of-archive blocks.)"""
    info = tarfile.TarInfo("huge.bin")
    info.size = 1 << 30
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as archive:
        archive.addfile(_file("dag.py")[0], io.BytesIO(GOOD_DAG))
        assert archive.fileobj is not None
        archive.fileobj.write(info.tobuf(format=tarfile.GNU_FORMAT))
    return gzip.compress(raw.getvalue(), mtime=0)


def _many_files(count: int = 100_000) -> bytes:
    names = (tarfile.TarInfo(f"d{i // 1000}/f{i}") for i in range(count))
    return tar_gz(_file("dag.py"), *names, fmt=tarfile.USTAR_FORMAT, level=1)


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("dag.py", GOOD_DAG)
    return buf.getvalue()


def _plain_tar() -> bytes:
    return tar(_file("dag.py"))


def _pax_path_escape() -> bytes:
    info = tarfile.TarInfo("harmless.py")
    info.size = len(GOOD_DAG)
    info.pax_headers = {"path": "../../escaped.py"}
    return tar_gz((info, GOOD_DAG))


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _long_name() -> bytes:
    return tar_gz(_file("a/" * 300 + "dag.py"))


@dataclass(frozen=True)
class Hostile:
    name: str
    build: Callable[[], bytes]
    reason: str  # a fragment of the refusal message


HOSTILE_ARCHIVES: list[Hostile] = [
    Hostile("absolute path", lambda: tar_gz(_file("/tmp/dagsync-evil.py")), "absolute paths are not allowed"),
    Hostile("dot-dot escape", lambda: tar_gz(_file("../evil.py")), "'..' would leave the project folder"),
    Hostile("nested dot-dot", lambda: tar_gz(_file("a/b/../../../evil.py")), "'..' would leave"),
    Hostile("PAX path header escape", _pax_path_escape, "'..' would leave"),
    Hostile("Windows drive path", lambda: tar_gz(_file("C:/evil.py")), "absolute paths"),
    Hostile("backslash path", lambda: tar_gz(_file("..\\evil.py")), "backslashes are not allowed"),
    Hostile("symlink to /etc", lambda: tar_gz(_file("dag.py"), _special("etc", tarfile.SYMTYPE, "/etc")),
            "links are not allowed"),
    Hostile("symlink then write through it",
            lambda: tar_gz(_special("out", tarfile.SYMTYPE, "../../.."), _file("out/evil.py")),
            "links are not allowed"),
    Hostile("hardlink to /etc/passwd", lambda: tar_gz(_file("dag.py"), _special("pw", tarfile.LNKTYPE, "/etc/passwd")),
            "links are not allowed"),
    Hostile("character device", lambda: tar_gz(_file("dag.py"), _special("tty", tarfile.CHRTYPE)),
            "only regular files and folders"),
    Hostile("block device", lambda: tar_gz(_file("dag.py"), _special("sda", tarfile.BLKTYPE)),
            "only regular files and folders"),
    Hostile("fifo", lambda: tar_gz(_file("dag.py"), _special("pipe", tarfile.FIFOTYPE)),
            "only regular files and folders"),
    Hostile("setuid bit", lambda: tar_gz(_file("dag.py", mode=0o4755)), "setuid/setgid"),
    Hostile("setgid bit", lambda: tar_gz(_file("dag.py", mode=0o2755)), "setuid/setgid"),
    Hostile("decompression bomb", _bomb, "uncompressed size over"),
    Hostile("entry claiming 1 GB", _claimed_huge, "over the per-file limit"),
    Hostile("100k tiny files", _many_files, "more than 10000"),
    Hostile("non-UTF-8 name", lambda: tar_gz(_file("caf\udce9.py"), fmt=tarfile.USTAR_FORMAT), "valid UTF-8"),
    Hostile("duplicate entries", lambda: tar_gz(_file("dag.py"), _file("dag.py", b"x = 1\n")), "duplicate entry"),
    Hostile("file used as a folder", lambda: tar_gz(_file("dag.py"), _file("dag.py/inner.py")),
            "is a file, not a folder"),
    Hostile("zip labelled tar.gz", _zip, "not a readable tar.gz"),
    Hostile("plain tar labelled tar.gz", _plain_tar, "not a readable tar.gz"),
    Hostile("truncated gzip", lambda: _truncated(tar_gz(_file("dag.py"), _file("b.py", GOOD_DAG * 400))),
            "not a readable tar.gz"),
    Hostile("random bytes", lambda: bytes(range(256)) * 8, "not a readable tar.gz"),
    Hostile("no files at all", lambda: tar_gz(_special("empty", tarfile.DIRTYPE)), "holds no files"),
    Hostile("over-long entry name", _long_name, "entry name longer than"),
    Hostile("precompiled bytecode", lambda: tar_gz(_file("dag.py"), _file("helper.pyc", b"\x00" * 32)),
            "compiled bytecode"),
    Hostile("__pycache__ folder", lambda: tar_gz(_file("dag.py"), _file("__pycache__/dag.cpython-311.pyc", b"x")),
            "compiled bytecode"),
]
