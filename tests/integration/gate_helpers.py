"""Helpers for the validation-gate tests: a baseline release, and archives written straight to S3."""

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
from dagsync.core.documents import YAML, read_catalog
from dagsync.core.models import Catalog, CatalogEntry, ChangeEvent, Manifest, Rejection, utcnow
from dagsync.core.serde import dump_yaml
from dagsync.core.store import Blob, ObjectStore, S3Store
from dagsync.gate.validator import Outcome, Validator
from dagsync.publish.publisher import publish

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


class Recorder:
    """A validator whose announcements and alerts are kept for assertions."""

    def __init__(self, store: ObjectStore, **kwargs: Any) -> None:
        self.events: list[ChangeEvent] = []
        self.rejections: list[Rejection] = []
        self.validator = Validator(store, on_release=self.events.append, on_rejection=self.rejections.append,
                                   **kwargs)

    def run(self, **kwargs: Any) -> Outcome:
        return self.validator.run(**kwargs)


def baseline(store: ObjectStore) -> Blob:
    """sales 1.0.0 and finance 1.0.0 live in release 1; returns release.json as it is then."""
    publish(store, "sales", "1.0.0", EXAMPLES / "sales", promote_now=True, published_by="ci")
    publish(store, "finance", "1.0.0", EXAMPLES / "finance", promote_now=True, published_by="ci")
    outcome = Recorder(store).run()
    assert outcome.status == "accepted" and outcome.sequence == 1, outcome
    release = store.get(keys.RELEASE_KEY)
    assert release is not None
    return release


def tar_gz(files: dict[str, bytes], extra: list[tarfile.TarInfo] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra or []:
            tar.addfile(info)
    return buf.getvalue()


def dag(dag_id: str) -> bytes:
    return f"from airflow.sdk import DAG\n\nwith DAG({dag_id!r}, schedule=None):\n    pass\n".encode()


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


def set_manifest(store: ObjectStore, changes: dict[str, str]) -> str:
    """Write the manifest straight to S3 with `changes` applied to the current projects."""
    from dagsync.core.documents import read_manifest

    current, _ = read_manifest(store)
    projects = {**(current.projects if current else {}), **changes}
    return store.put(keys.MANIFEST_KEY, dump_yaml(Manifest(projects=projects)), content_type=YAML)


def archive_of(folder: Path) -> bytes:
    return build_archive(folder).data


def bare_store() -> Iterator[S3Store]:
    """Just a versioned bucket in moto (in-process): the gate needs nothing else, and it is quick."""
    with mock_aws():
        client = AwsSettings(region="us-east-1").client("s3")
        client.create_bucket(Bucket="dagsync-artifacts")
        yield S3Store(client, "dagsync-artifacts")


def many_projects(store: ObjectStore, count: int) -> None:
    """`count` small projects, catalogued and live in one release (written directly: quick)."""
    projects = {}
    for i in range(count):
        write_direct(store, f"p{i:04d}", "1", tar_gz({"dag.py": dag(f"p{i:04d}_daily")}), promote=False)
        projects[f"p{i:04d}"] = "1"
    set_manifest(store, projects)
    assert Recorder(store).run().status == "accepted"


class RequestCounter:
    """Counts S3 requests made through a client (a botocore event hook), by operation."""

    def __init__(self, client: Any) -> None:
        self.operations: list[str] = []
        client.meta.events.register("before-send.s3", self._count)

    def _count(self, request: Any, **_: Any) -> None:
        self.operations.append(f"{request.method} {request.url.split('/', 3)[-1].split('?')[0]}")

    def reset(self) -> None:
        self.operations.clear()
