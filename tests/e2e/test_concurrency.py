"""25 real `dagsync publish` processes at once against `dagsync local up`: 20 on different projects, 5 on the
same one. No lost update, a consistent catalog, and every publisher told the truth about its outcome."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from dagsync.core import keys
from dagsync.core.aws import AwsSettings
from dagsync.core.documents import read_catalog, read_manifest, read_release
from dagsync.core.history import read_history
from dagsync.core.store import S3Store
from dagsync.local.procs import LocalStackProcess, _bin, _env, aws_env, wait_for

pytestmark = pytest.mark.e2e
SHARED = "shared"
EXIT_SUPERSEDED = 5


def dag_folder(root: Path, dag_id: str, note: str) -> Path:
    root.mkdir(parents=True)
    (root / "dag.py").write_text(f"# {note}\nfrom airflow.sdk import DAG\n\nwith DAG({dag_id!r}):\n    pass\n")
    return root


def start(stack: LocalStackProcess, project: str, version: str, folder: Path) -> subprocess.Popen[str]:
    cmd = [*_bin("dagsync"), "publish", project, version, str(folder), "--promote", "--wait", "--json",
           "--timeout", "180", "--published-by", f"ci-{project}-{version}"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(**aws_env(stack)))


def live_at(history: Any, sequence: int) -> str | None:
    """The version of a project live in release `sequence`, from its history."""
    version = None
    for entry in history:
        if entry.sequence <= sequence:
            version = entry.version
    return version


def test_25_concurrent_publishers_lose_nothing_and_are_told_the_truth(stack: LocalStackProcess,
                                                                     tmp_path: Path) -> None:
    # Given 20 teams with their own project and 5 pipelines publishing versions of one shared project
    own = {f"team{i:02d}": dag_folder(tmp_path / f"team{i:02d}", f"team{i:02d}_daily", "v1") for i in range(20)}
    shared = {f"1.{i}.0": dag_folder(tmp_path / f"shared-{i}", "shared_daily", f"build {i}") for i in range(5)}

    # When all 25 publish, promote and wait at the same moment, as real processes
    procs = {(p, "1.0.0"): start(stack, p, "1.0.0", d) for p, d in own.items()}
    procs |= {(SHARED, v): start(stack, SHARED, v, d) for v, d in shared.items()}
    results: dict[tuple[str, str], tuple[int, dict[str, Any], str]] = {}
    for key, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        results[key] = (proc.returncode, json.loads(out.strip().splitlines()[-1]), err)

    store = S3Store(AwsSettings.resolve(endpoint_url=stack.endpoint_url).client("s3"), stack.bucket)
    manifest, manifest_etag = read_manifest(store)
    assert manifest is not None
    assert wait_for(lambda: (r := read_release(store)[0]) is not None and r.manifest_etag == manifest_etag, 60)
    release, _ = read_release(store)
    assert release is not None

    # Then no update was lost: every team is live, and the shared project is at one of the five versions
    assert {p: v for p, v in manifest.projects.items() if p != SHARED} == dict.fromkeys(own, "1.0.0")
    final = manifest.projects[SHARED]
    assert final in shared
    assert {p: r.version for p, r in release.projects.items()} == manifest.projects

    # And the catalogs are consistent: one entry per publish, each pointing at an archive with its sha256
    for project in own:
        catalog = read_catalog(store, project)
        assert catalog is not None and [e.version for e in catalog.entries] == ["1.0.0"]
    catalog = read_catalog(store, SHARED)
    assert catalog is not None and sorted(e.version for e in catalog.entries) == sorted(shared)
    assert {e.published_by for e in catalog.entries} == {f"ci-{SHARED}-{v}" for v in shared}
    assert all(store.get(keys.archive_key(SHARED, v)) is not None for v in shared)

    # And every team publisher exited 0 with a release in which its version is live
    for project in own:
        code, doc, err = results[(project, "1.0.0")]
        assert code == 0, err
        assert live_at(read_history(store, project), doc["release"]["sequence"]) == "1.0.0"

    # And each shared publisher was told the truth: 0 only if its version was live in the release it named,
    # 5 (superseded) naming a version that really replaced it; the last writer's version is the one live
    history = read_history(store, SHARED)
    assert [e.sequence for e in history] == sorted({e.sequence for e in history})
    for version in shared:
        code, doc, err = results[(SHARED, version)]
        if code == 0:
            assert live_at(history, doc["release"]["sequence"]) == version
        else:
            assert code == EXIT_SUPERSEDED, (code, doc, err)
            assert doc["live_version"] in shared and doc["live_version"] != version
            assert f"{SHARED} {version} is not live" in err
    assert results[(SHARED, final)][0] == 0
    print(f"\nconcurrency: 25 publishers, release sequence {release.sequence}; shared outcomes: "
          + ", ".join(f"{v}={results[(SHARED, v)][0]}" for v in shared) + f"; live {final}")
