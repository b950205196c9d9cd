"""A worker's pinned release, without Airflow: from the host's store when the agent holds the trees, else from the
bucket (checked, safe-extracted), under one lock; what cannot be made available is refused with the reason."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from botocore.exceptions import EndpointConnectionError

from dagsync.agent import holds
from dagsync.agent.sync import Syncer
from dagsync.agent.volume import Volume
from dagsync.airflow.materialize import MARKER, Remote, Unavailable, materialize
from dagsync.core import keys, releases
from tests.support.store import FakeStore

A1 = {"alpha": ("1.0", {"dag_a.py": "A = 1\n"}), "lib": ("1.0", {"shared.py": "VERSION = 1\n"})}
A2 = {"alpha": ("2.0", {"dag_a.py": "A = 2\n"}), "lib": ("1.0", {"shared.py": "VERSION = 1\n"})}


def remote_of(store: FakeStore) -> Callable[[], Remote]:
    return lambda: Remote(store=store, verifier=releases.AcceptUnsigned())


def run(volume: Volume, target: Path, sequence: int, store: FakeStore) -> tuple[dict[str, str], tuple[str, ...]]:
    done = materialize(volume, target, sequence, remote_of(store), lock_timeout=10)
    os.close(done.hold)
    return done.trees, done.fetched


def test_a_release_the_agent_holds_needs_no_bucket(publish: Callable, make_syncer: Callable[..., Syncer],
                                                   dags: Path, store: FakeStore, tmp_path: Path) -> None:
    # Given releases 1 and 2 applied by the agent, and then the bucket unreachable
    r1 = publish(A1, sequence=1)
    syncer = make_syncer(retention_grace=3600.0)
    syncer.sync(full=True)
    publish(A2, sequence=2)
    syncer.sync(full=False)
    store.fail = EndpointConnectionError(endpoint_url="http://127.0.0.1:9")
    # When a task pinned to release 1 starts
    target = tmp_path / "storage/dagsync/versions/1"
    trees, fetched = run(Volume(dags), target, 1, store)
    # Then release 1 is there, from the store, as a real folder of links
    assert trees == {p: e.tree_name for p, e in r1.projects.items()} and fetched == ()
    assert target.is_dir() and not target.is_symlink()
    assert (target / "alpha/dag_a.py").read_text() == "A = 1\n"
    assert json.loads((target / MARKER).read_text())["sequence"] == 1


def test_an_empty_volume_gets_the_release_from_the_bucket_once(publish: Callable, store: FakeStore,
                                                               tmp_path: Path) -> None:
    # Given a worker volume with nothing on it, and release 2 in the bucket's history (release.json is at 3 now)
    publish(A1, sequence=2)
    publish({"alpha": ("3.0", {"dag_a.py": "A = 3\n"})}, sequence=3)
    volume, target = Volume(tmp_path / "empty-dags"), tmp_path / "versions/2"
    # When a task pinned to release 2 starts, twice
    trees, fetched = run(volume, target, 2, store)
    downloads = list(store.downloads)
    again, fetched_again = run(volume, target, 2, store)
    # Then release 2 (not the newest) was downloaded once, into the store, and linked
    assert fetched == ("alpha", "lib") and fetched_again == () and again == trees
    assert sorted(downloads) == [keys.archive_key("alpha", "1.0"), keys.archive_key("lib", "1.0")]
    assert store.downloads == downloads
    assert (target / "lib/shared.py").read_text() == "VERSION = 1\n"
    assert os.readlink(target / "alpha") == str(volume.tree_path("alpha", trees["alpha"]))


def test_a_tampered_archive_is_refused_and_nothing_reaches_the_store(publish: Callable, store: FakeStore,
                                                                     tmp_path: Path) -> None:
    publish(A1, sequence=1)
    store.objects[keys.archive_key("alpha", "1.0")] = store.objects[keys.archive_key("lib", "1.0")]
    volume, target = Volume(tmp_path / "empty-dags"), tmp_path / "versions/1"
    with pytest.raises(Unavailable, match=r"release 1: project alpha: .*(bytes|sha256)"):
        run(volume, target, 1, store)
    assert "alpha" not in volume.list_trees() and not target.exists()
    assert [p.name for p in volume.staging.iterdir()] == []


def test_a_release_missing_from_the_history_and_an_unreachable_bucket_say_so(publish: Callable, store: FakeStore,
                                                                             tmp_path: Path) -> None:
    publish(A1, sequence=1)
    volume = Volume(tmp_path / "empty-dags")
    with pytest.raises(Unavailable, match=r"release 7 is not in the bucket: releases/0000000007.json is missing"):
        run(volume, tmp_path / "versions/7", 7, store)
    store.fail = EndpointConnectionError(endpoint_url="http://127.0.0.1:9")
    with pytest.raises(Unavailable, match=r"release 1 could not be read from the bucket: EndpointConnectionError"):
        run(volume, tmp_path / "versions/1", 1, store)


def test_the_newest_release_is_found_before_its_history_entry_is_written(publish: Callable, store: FakeStore,
                                                                         tmp_path: Path) -> None:
    publish(A1, sequence=4)
    del store.objects[keys.release_key(4)]  # the validator moved release.json and has not written the history yet
    trees, _ = run(Volume(tmp_path / "empty-dags"), tmp_path / "versions/4", 4, store)
    assert sorted(trees) == ["alpha", "lib"]


def test_concurrent_tasks_on_one_host_share_one_download(publish: Callable, store: FakeStore, tmp_path: Path) -> None:
    publish(A1, sequence=1)
    volume, target = Volume(tmp_path / "empty-dags"), tmp_path / "versions/1"
    errors: list[BaseException] = []

    def task() -> None:
        try:
            run(volume, target, 1, store)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=task) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(store.downloads) == [keys.archive_key("alpha", "1.0"), keys.archive_key("lib", "1.0")]


def test_a_version_folder_left_half_deleted_or_as_a_symlink_is_made_whole_again(
    publish: Callable, store: FakeStore, tmp_path: Path
) -> None:
    publish(A1, sequence=1)
    volume, target = Volume(tmp_path / "empty-dags"), tmp_path / "versions/1"
    run(volume, target, 1, store)
    (target / "lib").unlink()  # Airflow's cleanup (rmtree) cut short
    run(volume, target, 1, store)
    assert (target / "lib/shared.py").read_text() == "VERSION = 1\n"
    os.rename(target, tmp_path / "elsewhere")
    os.symlink(tmp_path / "elsewhere", target)  # the cleanup would refuse to rmtree a symlink
    run(volume, target, 1, store)
    assert target.is_dir() and not target.is_symlink() and (target / "alpha/dag_a.py").exists()


def test_materializing_holds_the_release_until_the_task_lets_go(publish: Callable, store: FakeStore,
                                                                tmp_path: Path) -> None:
    r1 = publish(A1, sequence=1)
    volume = Volume(tmp_path / "empty-dags")
    done = materialize(volume, tmp_path / "versions/1", 1, remote_of(store), lock_timeout=10)
    with holds.volume_lock(volume, timeout=0):
        assert holds.held_trees(volume) == {(p, e.tree_name) for p, e in r1.projects.items()}
    os.close(done.hold)
    with holds.volume_lock(volume, timeout=0):
        assert holds.held_trees(volume) == set()


def test_a_lock_held_too_long_is_a_clear_refusal(publish: Callable, store: FakeStore, tmp_path: Path) -> None:
    publish(A1, sequence=1)
    volume = Volume(tmp_path / "empty-dags")
    with holds.volume_lock(volume, timeout=None), pytest.raises(Unavailable, match="locked for 0 s"):
        materialize(volume, tmp_path / "versions/1", 1, remote_of(store), lock_timeout=0)


def test_a_dag_volume_the_task_cannot_write_to_is_a_clear_refusal(publish: Callable, store: FakeStore,
                                                                  tmp_path: Path) -> None:
    # Given a DAG volume where the bundle cannot make .dagsync/ (here a file is in the way; a read-only mount is
    # the usual cause, and fails the same way)
    publish(A1, sequence=1)
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / ".dagsync").write_text("not a folder")
    # Then the task is refused with the reason and what it needs, not with a traceback
    with pytest.raises(Unavailable, match=r"release 1: .*needs write access to"):
        run(Volume(dags), tmp_path / "versions/1", 1, store)
