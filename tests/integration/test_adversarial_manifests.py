"""Hostile or broken manifests (and the catalogs and archives they name), written straight to S3 with the
publisher's rights and no dagsync code: each is rejected with a clear reason, release.json is untouched, and
status/rejection.json says why."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from dagsync.core import keys
from dagsync.core.models import Catalog, CatalogEntry, Manifest
from dagsync.core.serde import DocumentError, dump_yaml, load_yaml
from dagsync.core.store import S3Store
from dagsync.gate.validator import Validator
from dagsync.publish.publisher import publish
from tests.support import signing
from tests.support.projects import EXAMPLES
from tests.support.tars import tar_gz

LAUGHS = b'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + b"".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)}]\n".encode()
    for i in range(8)
)


def put(store: S3Store, key: str, body: bytes) -> None:
    store.client.put_object(Bucket=store.bucket, Key=key, Body=body)


def raw(body: bytes) -> Callable[[S3Store], bytes]:
    return lambda _store: body


def _overwritten_archive(store: S3Store) -> bytes:
    key = keys.archive_key("marketing", "1.0.0")
    data = bytearray(store.client.get_object(Bucket=store.bucket, Key=key)["Body"].read())
    data[len(data) // 2] ^= 0xFF  # same size, other bytes
    put(store, key, bytes(data))
    return b"projects:\n  sales: 1.0.0\n  marketing: 1.0.0\n"


def _deleted_archive(store: S3Store) -> bytes:
    store.client.delete_object(Bucket=store.bucket, Key=keys.archive_key("marketing", "1.0.0"))
    return b"projects:\n  sales: 1.0.0\n  marketing: 1.0.0\n"


def _grown_archive(store: S3Store) -> bytes:
    key = keys.archive_key("marketing", "1.0.0")
    data = store.client.get_object(Bucket=store.bucket, Key=key)["Body"].read()
    put(store, key, data + b"\0" * (2 << 20))
    return b"projects:\n  sales: 1.0.0\n  marketing: 1.0.0\n"


def _entry(version: str, key: str, data: bytes, unpacked: int) -> CatalogEntry:
    return CatalogEntry(version=version, archive_key=key, sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                        files=1, uncompressed_size=unpacked, published_at=datetime.now(UTC), published_by="attacker")


def _borrowed_archive_key(store: S3Store) -> bytes:
    key = keys.archive_key("sales", "1.0.0")
    data = store.client.get_object(Bucket=store.bucket, Key=key)["Body"].read()
    put(store, keys.catalog_key("copycat"), dump_yaml(Catalog(project="copycat", entries=[
        _entry("1", key, data, 0)])))
    return b"projects:\n  sales: 1.0.0\n  copycat: '1'\n"


def _catalog_of_another_project(store: S3Store) -> bytes:
    blob = store.client.get_object(Bucket=store.bucket, Key=keys.catalog_key("sales"))["Body"].read()
    put(store, keys.catalog_key("impostor"), blob)
    return b"projects:\n  sales: 1.0.0\n  impostor: 1.0.0\n"


def _corrupt_catalog(store: S3Store) -> bytes:
    put(store, keys.catalog_key("marketing"), b"project: marketing\nentries: [unclosed\n")
    return b"projects:\n  sales: 1.0.0\n  marketing: 1.0.0\n"


def _straight_archive(store: S3Store, project: str, body: bytes) -> bytes:
    data = tar_gz(("dag.py", body))
    key = keys.archive_key(project, "1")
    put(store, key, data)
    put(store, keys.catalog_key(project), dump_yaml(Catalog(project=project, entries=[
        _entry("1", key, data, len(body))])))
    return f"projects:\n  sales: 1.0.0\n  {project}: '1'\n".encode()


def _dag_id_clash(store: S3Store) -> bytes:
    dag = b"from airflow.sdk import DAG\nwith DAG(dag_id='sales_refunds'):\n  pass\n"
    return _straight_archive(store, "clash", dag)


def _syntax_error(store: S3Store) -> bytes:
    return _straight_archive(store, "broken", b"from airflow.sdk import DAG\nwith DAG(dag_id='x':\n")


@dataclass(frozen=True)
class Bad:
    name: str
    manifest: Callable[[S3Store], bytes]
    reason: str


BAD_MANIFESTS = [
    Bad("not YAML", raw(b"projects: [sales: 1.0.0\n"), "is not valid YAML"),
    Bad("billion laughs anchors", raw(LAUGHS), "YAML aliases are not allowed"),
    Bad("alias", raw(b"x: &v 1.0.0\nprojects:\n  sales: *v\n"), "YAML aliases are not allowed"),
    Bad("huge file", raw(b"projects:\n  sales: 1.0.0\n" + b"#" * (1024 * 1024) + b"\n"), "the limit is"),
    Bad("unknown key", raw(b"projects:\n  sales: 1.0.0\nprojcts:\n  x: 1.0.0\n"), "projcts"),
    Bad("unknown schema version", raw(b"schema_version: 2\nprojects:\n  sales: 1.0.0\n"), "schema_version"),
    Bad("path-like project name", raw(b"projects:\n  ../etc: 1.0.0\n"), "project name '../etc' is not allowed"),
    Bad("project name with a slash", raw(b"projects:\n  team/sales: 1.0.0\n"), "project name"),
    Bad("absolute project name", raw(b"projects:\n  /etc/passwd: 1.0.0\n"), "project name"),
    Bad("path-like version", raw(b"projects:\n  sales: ../../1.0.0\n"), "version '../../1.0.0' is not allowed"),
    Bad("version with ..", raw(b"projects:\n  sales: 1..0\n"), "is not allowed"),
    Bad("YAML float version", raw(b"projects:\n  sales: 1.10\n"), "quote it"),
    Bad("empty set", raw(b"projects: {}\n"), "lists no projects"),
    Bad("empty document", raw(b""), "is empty"),
    Bad("top-level list", raw(b"- sales\n"), "must be a mapping"),
    Bad("projects as a list", raw(b"projects:\n  - sales\n"), "projects"),
    Bad("non-UTF-8", raw(b"projects:\n  sales: 1.0.0\n  caf\xe9: 1.0.0\n"), "not UTF-8"),
    Bad("duplicate keys", raw(b"projects:\n  sales: 1.0.0\n  sales: 9.9.9\n"), "duplicate key 'sales'"),
    Bad("deep nesting", raw(b"projects: " + b"[" * 20000 + b"\n"), "manifest.yaml"),
    Bad("python object tag", raw(b"projects: !!python/object/apply:os.system ['touch /tmp/pwned']\n"),
        "is not valid YAML"),
    Bad("allow_empty not a boolean", raw(b"allow_empty: maybe\nprojects:\n  sales: 1.0.0\n"), "allow_empty"),
    Bad("unknown version", raw(b"projects:\n  sales: 9.9.9\n"), "not in catalog/sales.yaml"),
    Bad("never published project", raw(b"projects:\n  sales: 1.0.0\n  ghost: 1.0.0\n"), "not in catalog/ghost.yaml"),
    Bad("checksum mismatch (archive overwritten)", _overwritten_archive, "does not match the catalog"),
    Bad("archive deleted", _deleted_archive, "is missing"),
    Bad("archive grown past its catalog size", _grown_archive, "larger than"),
    Bad("catalog borrowing another project's archive", _borrowed_archive_key, "not this project's archive key"),
    Bad("catalog copied from another project", _catalog_of_another_project, "says it is the catalog of 'sales'"),
    Bad("corrupt catalog", _corrupt_catalog, "catalog/marketing.yaml is not valid YAML"),
    Bad("dag_id owned by another live project", _dag_id_clash, "more than one live project"),
    Bad("DAG file with a syntax error", _syntax_error, "syntax error"),
]
CASES = [pytest.param(b, id=b.name.replace(" ", "-")) for b in BAD_MANIFESTS]


def test_there_are_at_least_20_kinds_of_bad_manifest() -> None:
    assert len(BAD_MANIFESTS) >= 20


@pytest.mark.parametrize("bad", CASES)
def test_a_bad_manifest_written_straight_to_s3_is_rejected_and_nothing_goes_live(bad: Bad, store: S3Store) -> None:
    # Given a live release (sales) and another published, not live, project (marketing)
    events: list[Any] = []
    validator = Validator(store, **signing.KEYS, on_release=events.append, record_history=False)
    publish(store, "sales", "1.0.0", EXAMPLES / "sales", promote_now=True, published_by="test")
    publish(store, "marketing", "1.0.0", EXAMPLES / "marketing", published_by="test")
    assert validator.run().status == "accepted"
    before = store.get(keys.RELEASE_KEY)
    assert before is not None
    # When a bad manifest (and whatever it names) is put straight into the bucket
    put(store, keys.MANIFEST_KEY, bad.manifest(store))
    outcome = validator.run()
    # Then it is rejected, with the reason, and release.json is untouched: no host changes anything
    assert outcome.status == "rejected" and bad.reason in outcome.detail, outcome
    after = store.get(keys.RELEASE_KEY)
    assert after is not None and after.etag == before.etag and len(events) == 1
    rejection = store.get(keys.REJECTION_KEY)
    assert rejection is not None and bad.reason.encode() in rejection.data
    # And the scheduled recheck says the same, without writing anything
    assert validator.run(recheck_rejected=True).status == "noop"


# Refused by the document reader alone: `dagsync validate`, the validator and the agent share it.
DOCUMENT_ONLY = {"not YAML", "billion laughs anchors", "alias", "huge file", "unknown key", "unknown schema version",
                 "path-like project name", "project name with a slash", "absolute project name", "path-like version",
                 "version with ..", "YAML float version", "empty set", "empty document", "top-level list",
                 "projects as a list", "non-UTF-8", "duplicate keys", "deep nesting", "python object tag",
                 "allow_empty not a boolean"}


@pytest.mark.parametrize("bad", [pytest.param(b, id=b.name) for b in BAD_MANIFESTS if b.name in DOCUMENT_ONLY])
def test_the_shared_document_reader_refuses_it_with_the_same_reason(bad: Bad) -> None:
    with pytest.raises(DocumentError) as refused:
        load_yaml(Manifest, bad.manifest(None), keys.MANIFEST_KEY)  # type: ignore[arg-type]
    assert bad.reason in str(refused.value)
