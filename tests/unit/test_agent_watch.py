"""Drift checks with inotify: a watched tree with no event skips the stat walk, a touched one is hashed, a watched
folder re-reads only the entries events named, and without inotify everything is read and checked as before."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from dagsync.agent.sync import Syncer
from dagsync.agent.watch import Watch

A1 = {"alpha": ("1.0", {"dag_a.py": "a = 1\n", "lib/util.py": "u = 1\n"})}
pytestmark = pytest.mark.skipif(not Watch().available, reason="inotify is not available here")


def repairs(syncer: Syncer) -> float:
    return syncer.metrics.registry.get_sample_value("dagsync_agent_drift_repairs_total", {"kind": "tree"}) or 0.0


def watched_syncer(publish: Callable, make_syncer: Callable[..., Syncer]) -> Syncer:
    """A host whose tree of alpha is watched: synced, then one stat cycle (which checks and watches it)."""
    publish(A1, sequence=1)
    syncer = make_syncer(digest_every=1000)
    syncer.sync(full=True)  # cycle 0 (deep): fetches alpha
    syncer.sync(full=True)  # cycle 1: alpha is new, so stat-checked, and watched from then on
    assert not syncer.watch.changed(tree_key(syncer))
    return syncer


def tree_key(syncer: Syncer) -> str:
    return str(syncer.volume.tree_path("alpha", syncer.state.links["alpha"]))


def test_an_edit_in_a_subfolder_marks_the_tree_touched(tmp_path: Path) -> None:
    (tmp_path / "t" / "lib").mkdir(parents=True)
    (tmp_path / "t" / "lib" / "u.py").write_text("u = 1\n")
    watch, key = Watch(), str(tmp_path / "t")
    watch.watch_tree(key)
    watch.drain()
    assert not watch.changed(key) and not watch.touched(key)
    (tmp_path / "t" / "lib" / "u.py").write_text("u = 2\n")
    watch.drain()
    assert watch.changed(key) and watch.touched(key)
    watch.forget(key)
    assert watch.changed(key) and not watch.touched(key)
    watch.close()


def test_a_watched_folder_names_the_entries_that_changed(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to("x")
    watch, key = Watch(), str(tmp_path)
    assert watch.take(key) is None  # not watched yet: read it whole (and it is watched from now on)
    (tmp_path / "b").write_text("")
    (tmp_path / "a").unlink()
    watch.drain()
    assert watch.take(key) == {"a", "b"}
    watch.drain()
    assert watch.take(key) == set()
    watch.close()
    assert watch.take(key) is None


def test_a_same_size_same_mtime_edit_of_a_watched_tree_is_repaired_the_next_cycle(
        publish: Callable, make_syncer: Callable[..., Syncer], dags: Path) -> None:
    syncer = watched_syncer(publish, make_syncer)
    path = dags / "alpha" / "dag_a.py"
    st = path.stat()
    path.write_text("a = 9\n")  # same size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime: a stat walk cannot see it
    assert syncer.sync(full=True).outcome == "success"  # a stat cycle, not a deep one
    assert path.read_text() == "a = 1\n" and repairs(syncer) == 1


def test_a_folder_added_to_a_watched_tree_is_repaired(publish: Callable, make_syncer: Callable[..., Syncer],
                                                      dags: Path) -> None:
    syncer = watched_syncer(publish, make_syncer)
    (dags / "alpha" / "lib" / "extra").mkdir()
    syncer.sync(full=True)
    assert not (dags / "alpha" / "lib" / "extra").exists() and repairs(syncer) == 1


def test_a_quiet_watched_tree_is_left_alone(publish: Callable, make_syncer: Callable[..., Syncer],
                                            dags: Path) -> None:
    syncer = watched_syncer(publish, make_syncer)
    (dags / "alpha" / "dag_a.py").read_text()  # reading is no change
    assert syncer.sync(full=True).outcome == "noop"
    assert not syncer.watch.changed(tree_key(syncer)) and repairs(syncer) == 0


def test_without_inotify_every_tree_is_stat_checked(publish: Callable, make_syncer: Callable[..., Syncer],
                                                    dags: Path) -> None:
    syncer = watched_syncer(publish, make_syncer)
    syncer.watch.close()  # as where inotify is missing or the watch limit is reached
    (dags / "alpha" / "dag_a.py").write_text("a = 666  # edited by hand\n")
    assert syncer.sync(full=True).outcome == "success"
    assert (dags / "alpha" / "dag_a.py").read_text() == "a = 1\n" and repairs(syncer) == 1


def test_a_link_retargeted_behind_the_agents_back_is_repaired(publish: Callable, make_syncer: Callable[..., Syncer],
                                                             dags: Path) -> None:
    syncer = watched_syncer(publish, make_syncer)
    good = os.readlink(dags / "alpha")
    (dags / "tmp").symlink_to("/etc")
    os.replace(dags / "tmp", dags / "alpha")
    (dags / "handmade.py").write_text("")
    assert syncer.sync(full=True).outcome == "success"
    assert os.readlink(dags / "alpha") == good
    assert syncer.metrics.registry.get_sample_value("dagsync_agent_unowned_entries") == 1


def test_a_tree_deleted_from_the_store_is_fetched_again(publish: Callable, make_syncer: Callable[..., Syncer],
                                                        dags: Path) -> None:
    syncer = watched_syncer(publish, make_syncer)
    shutil.rmtree(tree_key(syncer))
    assert syncer.sync(full=True).outcome == "success"
    assert (dags / "alpha" / "dag_a.py").read_text() == "a = 1\n"


def test_a_quiet_volume_is_not_scanned_until_something_changes(publish: Callable, make_syncer: Callable[..., Syncer],
                                                               dags: Path) -> None:
    syncer = watched_syncer(publish, make_syncer)
    syncer.sync(full=True)  # finds nothing to do: from now on the volume is quiet
    assert syncer._quiet()
    scanned = syncer.reader.links
    syncer.reader.links = None  # type: ignore[assignment,method-assign]  # a quiet cycle must not look at the links
    assert syncer.sync(full=True).outcome == "noop"
    syncer.reader.links = scanned  # type: ignore[method-assign]
    (dags / "alpha").unlink()
    assert not syncer._quiet()
    assert syncer.sync(full=True).outcome == "success" and (dags / "alpha").is_symlink()


@pytest.mark.parametrize("where", [".dagsync/current", ".dagsync/views/1/alpha", "alpha/lib/util.py"])
def test_any_change_on_the_volume_ends_the_quiet(publish: Callable, make_syncer: Callable[..., Syncer], dags: Path,
                                                 where: str) -> None:
    syncer = watched_syncer(publish, make_syncer)
    syncer.sync(full=True)
    assert syncer._quiet()
    path = dags / where
    if path.is_symlink():
        target = os.readlink(path)
        path.unlink()
        path.symlink_to(target)
    else:
        path.write_text("changed\n")
    assert not syncer._quiet()
    syncer.sync(full=True)  # repaired (or found as it was) by a full scan
    syncer.sync(full=True)
    assert syncer._quiet()


def test_bytecode_airflow_writes_into_a_tree_is_not_a_change(publish: Callable, make_syncer: Callable[..., Syncer],
                                                             dags: Path) -> None:
    # Airflow's parser writes __pycache__ beside the DAG files it imports: not the tree's content (the stat and deep
    # checks leave it out), so it neither ends the quiet nor makes the next reconcile hash the tree
    syncer = watched_syncer(publish, make_syncer)
    syncer.sync(full=True)
    assert syncer._quiet()
    for folder in (dags / "alpha", dags / "alpha" / "lib"):
        (folder / "__pycache__").mkdir()
        (folder / "__pycache__" / "dag_a.cpython-311.pyc").write_bytes(b"\0" * 16)
    assert syncer._quiet() and not syncer.watch.changed(tree_key(syncer))
    (dags / "alpha" / "lib" / "__init__.py").write_text("")  # a file beside them still counts
    assert not syncer._quiet()


def test_a_fetched_project_s_store_folder_is_read_whole_once_and_its_path_held_once(
        publish: Callable, make_syncer: Callable[..., Syncer]) -> None:
    # Given a host that fetched alpha, then ran the reconcile that reads its new store folder
    syncer = watched_syncer(publish, make_syncer)
    folder = str(syncer.volume.store / "alpha")
    # Then the scan knows the folder's tree, read whole once
    assert syncer.reader.trees() == {"alpha": [syncer.state.links["alpha"]]}
    # And the reader and the watch key the folder by one string, not two equal ones (10,000 at 10,000 projects)
    reader_key = next(k for k in syncer.reader._folders if k == folder)
    watch_key = next(k for k in syncer.watch._paths if k == folder)
    assert reader_key is watch_key
