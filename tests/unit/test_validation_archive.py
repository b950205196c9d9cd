"""Archive and DAG-content rules, offline: only safe entries, within limits; Python is parsed, never run."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest

from dagsync.core.archive import DEFAULT_LIMITS, Limits, UnsafeArchive, build_archive, iter_members
from dagsync.core.dagcheck import inspect_members
from dagsync.publish.workflow import validate_path
from tests.support.tars import member, tar_gz


def refuse(data: bytes, limits: Limits = DEFAULT_LIMITS) -> str:
    with pytest.raises(UnsafeArchive) as exc:
        list(iter_members(io.BytesIO(data), limits))
    return str(exc.value)


DAG = b"from airflow.sdk import DAG\nwith DAG('ok'):\n    pass\n"


@pytest.mark.parametrize(
    ("entries", "reason"),
    [
        ([("../escape.py", DAG)], "'..' would leave the project folder"),
        ([("a/../../escape.py", DAG)], "'..' would leave the project folder"),
        ([("/etc/cron.d/x", DAG)], "absolute paths are not allowed"),
        ([("C:/x.py", DAG)], "absolute paths are not allowed"),
        ([("a\\b.py", DAG)], "backslashes are not allowed"),
        ([("ok.py", DAG), member("link.py", tarfile.SYMTYPE, linkname="/etc/passwd")], "links are not allowed"),
        ([("ok.py", DAG), member("hard.py", tarfile.LNKTYPE, linkname="ok.py")], "links are not allowed"),
        ([("ok.py", DAG), member("dev", tarfile.CHRTYPE)], "only regular files and folders"),
        ([("ok.py", DAG), member("fifo", tarfile.FIFOTYPE)], "only regular files and folders"),
        ([member("suid", mode=0o4755)], "setuid/setgid bits are not allowed"),
        ([("ok.py", DAG), ("ok.py", DAG)], "duplicate entry"),
        ([("lib", b"x"), ("lib/mod.py", DAG)], "'lib' is a file, not a folder"),
        ([("lib/mod.py", DAG), ("lib", b"x")], "duplicate entry"),
        ([member("empty_dir", tarfile.DIRTYPE)], "the archive holds no files"),
    ],
)
def test_an_unsafe_entry_is_refused_naming_the_entry_and_why(entries: list, reason: str) -> None:  # type: ignore[type-arg]
    assert reason in refuse(tar_gz(*entries))


def test_limits_on_file_count_sizes_and_decompression_are_enforced() -> None:
    # Given limits small enough to test
    small = Limits(max_files=2, max_uncompressed_bytes=1000, max_file_bytes=600)
    # Then each limit is a refusal with its reason
    assert "more than 2 files" in refuse(tar_gz(*[(f"f{i}.py", b"x=1\n") for i in range(3)]), small)
    assert "over the per-file limit of 600" in refuse(tar_gz(("big.py", b"#" * 700)), small)
    assert "uncompressed size over 1000" in refuse(tar_gz(("a.py", b"#" * 500), ("b.py", b"#" * 501)), small)
    # And a header that decompresses to megabytes (a PAX record) is stopped before it is read into memory
    bomb = tar_gz(("a.py", b"x=1\n"), pax={"comment": "z" * (3 * 1024 * 1024)})
    assert "decompresses to more than" in refuse(bomb, small)


@pytest.mark.parametrize("data", [b"", b"not a gzip", gzip.compress(b"not a tar" * 100), tar_gz(("a.py", DAG))[:60]])
def test_garbage_is_refused_as_unreadable(data: bytes) -> None:
    assert "not a readable tar.gz archive" in refuse(data) or "no files" in refuse(data)


def test_an_archive_made_with_tar_dash_C_dot_is_accepted(tmp_path: Path) -> None:
    # Given `tar -czf x.tgz -C project .`, which starts with a "./" entry for the folder itself
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "dag.py").write_bytes(DAG)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(tmp_path / "p", arcname=".")
    # Then the root entry is skipped and the files come through with clean names
    assert [m.name for m in iter_members(io.BytesIO(buf.getvalue()))] == ["dag.py"]


def members(files: dict[str, bytes]) -> list:  # type: ignore[type-arg]
    return list(iter_members(io.BytesIO(tar_gz(*files.items()))))


def test_dag_ids_are_found_statically_in_every_spelling() -> None:
    src = b"""
from airflow.sdk import DAG, dag
import airflow
a = DAG("positional")
b = DAG(dag_id="keyword")
with airflow.DAG("attribute"):
    pass
@dag
def decorated(): ...
@dag(dag_id="decorated_with_id")
def ignored_name(): ...
@dag(schedule=None)
def decorated_call(): ...
"""
    report = inspect_members(members({"dags/all.py": src}))
    assert report.errors == []
    assert report.dag_ids == sorted(
        ["positional", "keyword", "attribute", "decorated", "decorated_with_id", "decorated_call"]
    )


def test_python_is_compiled_but_never_executed(tmp_path: Path) -> None:
    # Given a DAG file that would leave a mark (and fail) if it were run
    marker = tmp_path / "executed"
    src = f"open({str(marker)!r}, 'w').write('ran')\nraise SystemExit(1)\nDAG('quiet')\n".encode()
    # When it is inspected
    report = inspect_members(members({"evil.py": src}))
    # Then its dag_id is found and nothing ran
    assert report.dag_ids == ["quiet"] and not marker.exists()


@pytest.mark.parametrize(
    ("src", "reason"),
    [
        (b"def broken(:\n", "broken.py:1: syntax error"),
        (b"x = 1\x00\n", "broken.py: syntax error: source code string cannot contain null bytes"),
        (b"x = " + b"-" * 200_000 + b"1\n", "broken.py: nested too deeply to compile"),
        (b"DAG('twice')\nDAG('twice')\n", "dag_id declared more than once in the project: twice"),
    ],
)
def test_dag_content_that_cannot_load_is_refused_with_file_and_line(src: bytes, reason: str) -> None:
    report = inspect_members(members({"broken.py": src}))
    assert any(reason in e for e in report.errors), report.errors


def test_validate_path_checks_a_dag_folder_and_an_archive(tmp_path: Path) -> None:
    # Given a DAG folder with a syntax error
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "ok.py").write_bytes(DAG)
    (folder / "bad.py").write_text("def x(:\n")
    result = validate_path(folder)
    assert not result.ok and "bad.py:1: syntax error" in result.errors[0]
    # And once fixed, an archive built from it passes the same rules
    (folder / "bad.py").unlink()
    assert validate_path(folder).ok and validate_path(folder).details["dag_ids"] == ["ok"]
    archive = tmp_path / "proj.tar.gz"
    archive.write_bytes(build_archive(folder).data)
    assert validate_path(archive).ok
    archive.write_bytes(tar_gz(("ok.py", DAG), member("l", tarfile.SYMTYPE, linkname="/")))
    assert "links are not allowed" in validate_path(archive).errors[0]
