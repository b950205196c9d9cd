"""Project sources and releases for tests: the examples, generated project versions, DAG files, and a
release.json with its archives written as the validator would have left them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from dagsync.core import keys, releases
from dagsync.core.archive import build_archive
from dagsync.core.documents import JSON
from dagsync.core.models import Chain, ManifestWrite, Release, ReleasedProject
from dagsync.core.store import ObjectStore
from tests.support import signing

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

Files = dict[str, str]  # relative path -> text
# The chain every release the tests write by hand belongs to (a validator makes its own).
TEST_CHAIN = Chain(id="7e57" * 8, created_at=datetime(2026, 1, 1, tzinfo=UTC))


def dag(dag_id: str) -> bytes:
    """A minimal DAG file declaring `dag_id`."""
    return f"from airflow.sdk import DAG\n\nwith DAG({dag_id!r}, schedule=None):\n    pass\n".encode()


def write_version(root: Path, project: str, version: int, *, dag_id: str | None = None, padding: int = 0,
                  imports_lib: bool = True) -> Path:
    """A project folder whose DAG file imports a name only its own version's library defines: a reader (or
    Airflow) that saw the DAG file of one version and the library of another would fail to import it.
    `padding` extra data files make the tree slow enough to extract that a kill can land mid-way."""
    src = root / project / f"v{version}"
    lib = src / f"{project}_lib"
    lib.mkdir(parents=True, exist_ok=True)
    (src / ".airflowignore").write_text(f"{project}_lib/\ndata/\n")
    (lib / "__init__.py").write_text(f"MARKER_{version} = {version}\n")
    (src / f"{project}_dag.py").write_text(
        "from __future__ import annotations\n\n"
        "import pendulum\n"
        "from airflow.sdk import DAG\n\n"
        + (f"from {project}.{project}_lib import MARKER_{version}\n\n" if imports_lib else f"MARKER_{version} = 0\n\n")
        + f"with DAG(dag_id={dag_id or project + '_dag'!r}, schedule=None,\n"
        "         start_date=pendulum.datetime(2026, 1, 1, tz='UTC'), catchup=False,\n"
        + f"         tags=['v{{}}'.format(MARKER_{version})]):\n"
        + "    pass\n"
    )
    if padding:
        data = src / "data"
        data.mkdir(exist_ok=True)
        for i in range(padding):
            (data / f"part-{i:04d}.txt").write_text(f"{project} v{version} part {i}\n" * 20)
    return src


def write_returning(root: Path, project: str, version: str, *, tags: tuple[str, ...] = ()) -> Path:
    """A project whose one DAG (`<project>_dag`) has one task, `which`, that returns "version <version>": changing
    only the version changes only the task's code (the serialized DAG stays the same unless `tags` change)."""
    src = root / project / version
    src.mkdir(parents=True, exist_ok=True)
    (src / f"{project}_dag.py").write_text(
        "from __future__ import annotations\n\n"
        "import pendulum\n"
        "from airflow.sdk import dag, task\n\n\n"
        f"@dag(dag_id={project + '_dag'!r}, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz='UTC'),\n"
        f"     catchup=False, tags={list(tags)!r})\n"
        "def returning() -> None:\n"
        "    @task\n"
        "    def which() -> str:\n"
        f"        return {'version ' + version!r}\n\n"
        "    which()\n\n\n"
        "returning()\n"
    )
    return src


def write_release(store: ObjectStore, src: Path, sequence: int, projects: dict[str, tuple[str, Files]], *,
                write: bool = True, chain: Chain = TEST_CHAIN,
                signer: releases.Signer | None = signing.SIGNER) -> Release:
    """For each project (version, files): the files under src/<project>/<version>, their archive uploaded where
    the catalog would say; then (unless `write` is False) the release.json naming them, as the validator writes
    it (in `chain`, signed by `signer`). Returns that Release."""
    released: dict[str, ReleasedProject] = {}
    for name, (version, files) in projects.items():
        root = src / name / version
        for rel, text in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text)
        built = build_archive(root)
        key = keys.archive_key(name, version)
        store.put(key, built.data)
        released[name] = ReleasedProject(version=version, archive_key=key, sha256=built.sha256, size=built.size,
                                         files=built.files, uncompressed_size=built.uncompressed_size)
    release = Release(sequence=sequence, manifest_etag='"m"', published_at=datetime.now(UTC), projects=released,
                      chain=chain)
    if write:
        put_release(store, release, signer)
    return release


def put_release(store: ObjectStore, release: Release, signer: releases.Signer | None = signing.SIGNER) -> bytes:
    """Store `release` as it is (its sequence, its chain or TEST_CHAIN) the way the validator stores one: its
    shards, then its root at release.json and releases/<sequence>.json, unconditionally; signed by `signer` (the
    tests' key; None: unsigned). Returns the root's bytes."""
    made = releases.compose(sequence=release.sequence, chain=release.chain or TEST_CHAIN, after=dict(release.projects),
                            manifest=ManifestWrite(etag=release.manifest_etag), now=release.published_at)
    for key, data in made.shards.items():
        store.put(keys.shard_key(key), data, content_type=JSON)
    data = releases.encode_root(made.root, signer)
    store.put(keys.RELEASE_KEY, data, content_type=JSON)
    store.put(keys.release_key(release.sequence), data, content_type=JSON)
    return data
