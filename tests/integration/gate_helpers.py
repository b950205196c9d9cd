"""Helpers for the validation-gate tests against moto: archives and catalog entries written straight to S3, a
bucket of many projects, a count of the S3 requests a run makes, and what a rejection must leave behind."""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from moto import mock_aws

from dagsync.core import keys
from dagsync.core.archive import build_archive
from dagsync.core.aws import AwsSettings
from dagsync.core.documents import YAML, read_catalog, read_rejection
from dagsync.core.models import Catalog, CatalogEntry, utcnow
from dagsync.core.serde import dump_yaml
from dagsync.core.store import ObjectStore, S3Store
from tests.support.gate import Recorder, set_manifest
from tests.support.projects import dag
from tests.support.tars import tar_gz


def write_direct(store: ObjectStore, project: str, version: str, data: bytes, *, promote: bool = True,
                 **entry: Any) -> CatalogEntry:
    """Archive, catalog entry and manifest written straight to S3, as a tool bypassing the CLI would.
    The catalog entry describes `data` truthfully unless `entry` overrides a field."""
    key = keys.archive_key(project, version)
    store.put(key, data)
    fields: dict[str, Any] = {
        "version": version, "archive_key": key, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
        "files": 1, "uncompressed_size": 0, "published_at": utcnow(), "published_by": "direct",
    }
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            regular = [m for m in tar.getmembers() if m.isreg()]
            fields["files"], fields["uncompressed_size"] = len(regular), sum(m.size for m in regular)
    except (tarfile.TarError, OSError, EOFError):
        pass
    fields.update(entry)
    new = CatalogEntry(**fields)
    catalog = read_catalog(store, project) or Catalog(project=project)
    store.put(keys.catalog_key(project), dump_yaml(Catalog(project=project, entries=[*catalog.entries, new])),
              content_type=YAML)
    if promote:
        set_manifest(store, {project: version})
    return new


def archive_of(folder: Path) -> bytes:
    return build_archive(folder).data


def bare_store() -> Iterator[S3Store]:
    """Just a versioned bucket in moto (in-process): the gate needs nothing else, and it is quick."""
    with mock_aws():
        client = AwsSettings(region="us-east-1").client("s3")
        client.create_bucket(Bucket="dagsync-artifacts")
        yield S3Store(client, "dagsync-artifacts")


def many_projects(store: ObjectStore, count: int) -> Recorder:
    """`count` small projects, catalogued and live in one release (written directly: quick). Returns the validator
    that released them, warm as a Lambda container is between invocations."""
    projects = {}
    for i in range(count):
        write_direct(store, f"p{i:04d}", "1", tar_gz(("dag.py", dag(f"p{i:04d}_daily"))), promote=False)
        projects[f"p{i:04d}"] = "1"
    set_manifest(store, projects)
    recorder = Recorder(store)
    assert recorder.run().status == "accepted"
    return recorder


class RequestCounter:
    """Counts S3 requests made through a client (a botocore event hook), by operation."""

    def __init__(self, client: Any) -> None:
        self.operations: list[str] = []
        client.meta.events.register("before-send.s3", self._count)

    def _count(self, request: Any, **_: Any) -> None:
        self.operations.append(f"{request.method} {request.url.split('/', 3)[-1].split('?')[0]}")

    def reset(self) -> None:
        self.operations.clear()


def assert_rejected(store: S3Store, before: object, reason: str, **validator: object) -> None:
    """When the validator runs / Then it rejects with `reason`, records why, alerts, and hosts see no change."""
    recorder = Recorder(store, **validator)  # type: ignore[arg-type]
    manifest = store.get(keys.MANIFEST_KEY)
    outcome = recorder.run()
    assert outcome.status == "rejected", outcome
    assert reason in outcome.detail, outcome.detail
    rejection = read_rejection(store)
    assert rejection is not None and reason in rejection.reason
    assert manifest is not None and rejection.manifest_etag == manifest.etag
    assert [r.reason for r in recorder.rejections] == [rejection.reason] and recorder.events == []
    assert store.get(keys.RELEASE_KEY) == before  # byte for byte, same ETag: no host changes
