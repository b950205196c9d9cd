"""Every gate rule against moto: the validator refuses with a reason a person understands at once,
writes status/rejection.json, and leaves release.json (what hosts follow) untouched."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator

import pytest

from dagsync.core import keys
from dagsync.core.archive import Limits
from dagsync.core.documents import read_rejection
from dagsync.core.store import S3Store
from tests.integration.gate_helpers import archive_of, assert_rejected, bare_store, write_direct
from tests.support.gate import Recorder, baseline, set_manifest
from tests.support.projects import EXAMPLES, dag
from tests.support.tars import member, tar_gz


@pytest.fixture
def store() -> Iterator[S3Store]:
    yield from bare_store()


@pytest.mark.parametrize(
    ("manifest", "reason"),
    [
        (b"projects: [unclosed", "manifest.yaml is not valid YAML"),
        (b"- sales\n", "must be a mapping at the top level, not a list"),
        (b"\xff\xfeprojects: {}", "manifest.yaml is not UTF-8"),
        (b'a: &a ["x"]\nb: [*a, *a]\nprojects: {sales: "1.0.0"}\n', "YAML aliases are not allowed"),
        (b'projects: {sales: "1.0.0"}\nowner: me\n', "owner: Extra inputs are not permitted"),
        (b'projects: {"../sales": "1.0.0"}\n', "project name '../sales' is not allowed"),
        (b'projects: {sales: "1..0"}\n', "version '1..0' is not allowed"),
        (b"projects: {123: '1.0.0'}\n", "quote it"),
        (b"projects: {}\n", "the manifest lists no projects"),
        (b"projects: {sales: '1.0.0', sales: '2.0'}\n", "duplicate key 'sales'"),
        (b"projects: {sales: '1.0.0'}\n" + b"#" * (1024 * 1024), "the limit is 1048576"),
    ],
)
def test_a_malformed_manifest_is_rejected(store: S3Store, manifest: bytes, reason: str) -> None:
    before = baseline(store)
    store.put(keys.MANIFEST_KEY, manifest)
    assert_rejected(store, before, reason)


def test_a_version_missing_from_the_catalog_is_rejected(store: S3Store) -> None:
    before = baseline(store)
    set_manifest(store, {"sales": "9.9.9"})
    assert_rejected(store, before, "sales 9.9.9: not in catalog/sales.yaml (latest: 1.0.0)")
    set_manifest(store, {"sales": "1.0.0", "ghost": "1.0"})
    assert_rejected(store, before, "ghost 1.0: not in catalog/ghost.yaml")


def test_an_empty_manifest_goes_through_only_when_it_says_so(store: S3Store) -> None:
    before = baseline(store)
    store.put(keys.MANIFEST_KEY, b"projects: {}\n")
    assert_rejected(store, before, "needs `allow_empty: true`")
    store.put(keys.MANIFEST_KEY, b"allow_empty: true\nprojects: {}\n")
    outcome = Recorder(store).run()
    assert outcome.status == "accepted" and outcome.changed == ["finance", "sales"]


def test_a_missing_archive_is_rejected(store: S3Store) -> None:
    before = baseline(store)
    write_direct(store, "sales", "2.0", archive_of(EXAMPLES / "sales"))
    store.delete(keys.archive_key("sales", "2.0"))
    assert_rejected(store, before, "sales 2.0: archive projects/sales/2.0/dags.tar.gz is missing")


def test_an_archive_overwritten_after_cataloguing_is_rejected(store: S3Store) -> None:
    # Given a catalogued version whose archive was later overwritten in place (same size, other bytes)
    before = baseline(store)
    good = archive_of(EXAMPLES / "sales")
    write_direct(store, "sales", "2.0", good)
    store.put(keys.archive_key("sales", "2.0"), bytes(reversed(good)))
    assert_rejected(store, before, "does not match the catalog's")


def test_an_archive_of_another_size_than_recorded_is_rejected(store: S3Store) -> None:
    before = baseline(store)
    good = archive_of(EXAMPLES / "sales")
    write_direct(store, "sales", "2.0", good, size=len(good) - 10)
    assert_rejected(store, before, f"archive is larger than the {len(good) - 10} bytes the catalog records")
    write_direct(store, "sales", "2.1", good, size=len(good) + 10)
    assert_rejected(store, before, f"archive is {len(good)} bytes, the catalog says {len(good) + 10}")


def test_a_catalog_that_misdescribes_its_archive_is_rejected(store: S3Store) -> None:
    before = baseline(store)
    write_direct(store, "sales", "2.0", archive_of(EXAMPLES / "sales"), files=7)
    assert_rejected(store, before, "archive holds 2 files")


def test_a_catalog_entry_pointing_at_another_projects_archive_is_rejected(store: S3Store) -> None:
    before = baseline(store)
    write_direct(store, "sales", "2.0", archive_of(EXAMPLES / "sales"),
                 archive_key=keys.archive_key("finance", "1.0.0"))
    assert_rejected(store, before, "not this project's archive key")


def test_over_the_compressed_size_limit_is_rejected_before_download(store: S3Store) -> None:
    before = baseline(store)
    write_direct(store, "sales", "2.0", archive_of(EXAMPLES / "sales"))
    assert_rejected(store, before, "bytes; the limit is 100", limits=Limits(max_compressed_bytes=100))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (tar_gz(("../../etc/cron.d/x", dag("x"))), "unsafe archive: '../../etc/cron.d/x': '..' would leave"),
        (tar_gz(("ok.py", dag("x")), tarfile.TarInfo("l")), "unsafe archive"),
        (tar_gz(("lib", b"x"), ("lib/a.py", dag("x"))), "'lib' is a file, not a folder"),
        (tar_gz(*((f"f{i}.py", b"x=1\n") for i in range(5))), "more than 3 files"),
        (tar_gz(("big.py", b"#" * 5000)), "uncompressed size over 4000"),
        (b"definitely not gzip", "not a readable tar.gz archive"),
        (tar_gz(("dag.py", b"with DAG('x':\n")), "DAG content refused: dag.py:1: syntax error"),
    ],
)
def test_an_archive_written_straight_to_s3_meets_the_same_gate(store: S3Store, data: bytes, reason: str) -> None:
    # Given an archive and catalog entry written by something other than the CLI
    before = baseline(store)
    symlink = member("passwd.py", tarfile.SYMTYPE, linkname="/etc/passwd")
    bad = tar_gz(("ok.py", dag("x")), symlink) if reason == "unsafe archive" else data
    write_direct(store, "sales", "6.6.6", bad)
    limits = Limits(max_files=3, max_uncompressed_bytes=4000)
    assert_rejected(store, before, "links are not allowed" if reason == "unsafe archive" else reason, limits=limits)


def test_two_live_projects_declaring_the_same_dag_id_are_rejected(store: S3Store) -> None:
    # Given finance 2.0 declares a dag_id that the live sales 1.0.0 already owns
    before = baseline(store)
    write_direct(store, "finance", "2.0", tar_gz(("clash.py", dag("sales_refunds"))))
    assert_rejected(store, before, "dag_id 'sales_refunds' is declared by more than one live project: finance, sales")


def test_a_catalog_that_names_another_project_is_rejected(store: S3Store) -> None:
    before = baseline(store)
    cat = store.get(keys.catalog_key("finance"))
    assert cat is not None
    store.put(keys.catalog_key("newproj"), cat.data)
    set_manifest(store, {"newproj": "1.0.0"})
    assert_rejected(store, before, "catalog/newproj.yaml says it is the catalog of 'finance'")


def test_an_unreadable_catalog_is_rejected_naming_it(store: S3Store) -> None:
    before = baseline(store)
    store.put(keys.catalog_key("newproj"), b"project: newproj\nentries: [")
    set_manifest(store, {"newproj": "1.0.0"})
    assert_rejected(store, before, "newproj 1.0.0: catalog/newproj.yaml is not valid YAML")


def test_every_problem_is_listed_not_only_the_first(store: S3Store) -> None:
    before = baseline(store)
    set_manifest(store, {"sales": "8", "finance": "9"})
    assert_rejected(store, before, "2 problems: finance 9: not in catalog/finance.yaml")
    rejection = read_rejection(store)
    assert rejection is not None and len(rejection.errors) == 2
