"""The benchmark's data: N projects x 10 DAG files of a few KB, stored two ways in one bucket.

- dagsync: `projects/<p>/<v>/dags.tar.gz` + `catalog/<p>.yaml` + `manifest.yaml`, then the real validator
  writes `release.json` (the publisher's own archive builder and catalog model are used).
- the others: the same files as plain objects, `plain/<p>/<file>.py`, the layout `aws s3 sync` and
  Airflow's S3DagBundle read.

Loading is set-up, not measured: archives, catalogs and plain files are written straight into the moto
backend of the server this process runs (`Put`), which is ~50x quicker than 11,000 PUTs over HTTP. The
manifest, the validator's reads and release.json go over HTTP like everything else."""

from __future__ import annotations

import hashlib
import io
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import validator
from dagsync.core import keys
from dagsync.core.archive import build_archive, iter_members
from dagsync.core.dagcheck import inspect_members
from dagsync.core.models import Catalog, CatalogEntry, Manifest, utcnow
from dagsync.core.serde import dump_yaml, dump_yaml_json
from dagsync.core.store import S3Store

FILES_PER_PROJECT = 10
PLAIN_PREFIX = "plain/"
DAG_TEMPLATE = '''"""{project}: pipeline {index} of {files}, build {version}. Generated for the dagsync benchmark."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, task

BUILD = "{version}"
TABLES = [
{tables}
]

with DAG(dag_id="{project}__{index:02d}", schedule="@daily", start_date=pendulum.datetime(2025, 1, 1),
         catchup=False, tags=["bench", "{project}"]) as dag:

    @task
    def extract(table: str) -> int:
        return len(table)

    @task
    def load(rows: list[int]) -> int:
        return sum(rows)

    load(extract.expand(table=TABLES))
'''


def project_name(i: int) -> str:
    return f"p{i:04d}"


def dag_source(project: str, index: int, version: str) -> str:
    """About 3 KB of DAG source; the table list differs per file and per version, so it compresses like code."""
    seed = f"{project}/{index}/{version}"
    rows = []
    for n in range(40):
        h = hashlib.sha256(f"{seed}/{n}".encode()).hexdigest()
        rows.append(f'    "warehouse.{project}_{index:02d}_{h[:12]}_{h[12:20]}",  # {h[20:52]}')
    return DAG_TEMPLATE.format(project=project, index=index, files=FILES_PER_PROJECT, version=version,
                               tables="\n".join(rows))


def project_files(project: str, version: str, files: int = FILES_PER_PROJECT) -> dict[str, bytes]:
    return {f"dag_{i:02d}.py": dag_source(project, i, version).encode() for i in range(files)}


@dataclass(frozen=True)
class Built:
    project: str
    version: str
    archive: bytes
    entry: CatalogEntry
    files: dict[str, bytes]


def build(project: str, version: str, files_per_project: int = FILES_PER_PROJECT) -> Built:
    files = project_files(project, version, files_per_project)
    with tempfile.TemporaryDirectory(prefix="dagsync-bench-") as tmp:
        for name, data in files.items():
            Path(tmp, name).write_bytes(data)
        built = build_archive(Path(tmp))
    report = inspect_members(iter_members(io.BytesIO(built.data)))
    assert not report.errors, report.errors
    entry = CatalogEntry(
        version=version, archive_key=keys.archive_key(project, version), sha256=built.sha256, size=built.size,
        files=built.files, uncompressed_size=built.uncompressed_size, dag_ids=report.dag_ids,
        published_at=utcnow(), published_by="bench",
    )
    return Built(project, version, built.data, entry, files)


Put = Callable[[str, bytes], None]  # write one object (key, body)


def put_plain(put: Put, b: Built) -> None:
    for name, data in b.files.items():
        put(f"{PLAIN_PREFIX}{b.project}/{name}", data)


def put_dagsync(put: Put, b: Built, catalog: Catalog | None = None) -> None:
    put(b.entry.archive_key, b.archive)
    entries = [*(catalog.entries if catalog else []), b.entry]
    put(keys.catalog_key(b.project), dump_yaml(Catalog(project=b.project, entries=entries)))


def put_manifest(s3: Any, bucket: str, versions: dict[str, str]) -> None:
    """manifest.yaml naming `versions` (project -> version), written over HTTP like a publisher's."""
    manifest = Manifest(projects=dict(sorted(versions.items())))
    s3.put_object(Bucket=bucket, Key=keys.MANIFEST_KEY, Body=dump_yaml_json(manifest),
                  ContentType="application/yaml")


@dataclass
class Dataset:
    projects: int
    versions: dict[str, str]
    catalogs: dict[str, Catalog]
    archive_bytes: int
    plain_bytes: int


def load(s3: Any, bucket: str, put: Put, projects: int, *, version: str = "1.0.0", first: int = 0,
         release: bool = True) -> Dataset:
    """Write both layouts for `projects` projects (named from project_name(first) on), the manifest, and (`release`)
    the first release with the bench's validator; without it, whoever listens to the manifest releases it."""
    names = [project_name(i) for i in range(first, first + projects)]
    built: dict[str, Built] = {}
    with ProcessPoolExecutor(2) as pool:
        for b in pool.map(build, names, [version] * len(names), chunksize=25):
            put_dagsync(put, b)
            put_plain(put, b)
            built[b.project] = b
    put_manifest(s3, bucket, dict.fromkeys(names, version))
    if release:
        outcome = validator(S3Store(s3, bucket)).run()
        assert outcome.status == "accepted", outcome
    return Dataset(
        projects=projects,
        versions={n: version for n in names},
        catalogs={n: Catalog(project=n, entries=[b.entry]) for n, b in built.items()},
        archive_bytes=sum(len(b.archive) for b in built.values()),
        plain_bytes=sum(len(d) for b in built.values() for d in b.files.values()),
    )


def change_one(s3: Any, bucket: str, data: Dataset, project: str, version: str) -> Built:
    """A new version of one project in both layouts (every file of it changes), promoted in the manifest.
    Returns what was built; the caller runs the validator (so it can time and count it)."""
    b = build(project, version)

    def put(key: str, body: bytes) -> None:
        s3.put_object(Bucket=bucket, Key=key, Body=body)

    put_dagsync(put, b, data.catalogs[project])
    put_plain(put, b)
    data.catalogs[project] = Catalog(project=project, entries=[*data.catalogs[project].entries, b.entry])
    data.versions[project] = version
    put_manifest(s3, bucket, data.versions)
    return b
