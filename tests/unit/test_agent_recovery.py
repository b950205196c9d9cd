"""Crash safety: each test is named after the state a crash (or a person) left on disk."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from dagsync.agent.recovery import recover
from dagsync.agent.state import load_state
from dagsync.agent.sync import Syncer
from dagsync.agent.volume import Volume

A = {"alpha": ("1.0", {"dag_a.py": "a = 1\n"}), "beta": ("3", {"b.py": "b\n"})}


def test_staging_dir_left_behind(publish: Callable, make_syncer: Callable[..., Syncer], dags: Path) -> None:
    publish(A, sequence=1)
    make_syncer().sync(full=True)
    staging = dags / ".dagsync/staging"
    (staging / "alpha--2.0-abc--1234").mkdir()
    (staging / "alpha--2.0-abc--1234" / "half.py").write_text("partial")
    (staging / "beta--4-def.tar.gz.part").write_bytes(b"\x1f\x8b")
    report = recover(Volume(dags))
    assert report.staging_removed == 2 and list(staging.iterdir()) == []
    assert (dags / "alpha" / "dag_a.py").exists()


def test_state_json_corrupt(publish: Callable, make_syncer: Callable[..., Syncer], dags: Path, store) -> None:
    rel = publish(A, sequence=1)
    make_syncer().sync(full=True)
    (dags / ".dagsync/state.json").write_text('{"sequence": 1, "links": ')  # torn write
    report = recover(Volume(dags))
    assert report.state_rebuilt and "corrupt" in report.state_rebuilt
    assert report.state.links == {p: e.tree_name for p, e in rel.projects.items()}
    downloads = len(store.downloads)
    assert make_syncer().sync(full=True).outcome in ("noop", "success")
    assert len(store.downloads) == downloads  # rebuilt from disk: nothing fetched again
    state = load_state(dags / ".dagsync/state.json")
    assert state is not None and state.sequence == 1


def test_state_json_missing(publish: Callable, make_syncer: Callable[..., Syncer], dags: Path) -> None:
    rel = publish(A, sequence=1)
    make_syncer().sync(full=True)
    (dags / ".dagsync/state.json").unlink()
    report = recover(Volume(dags))
    assert report.state_rebuilt == "state.json missing"
    assert set(report.state.trees) == set(rel.projects)


def test_temp_symlink_left_behind_by_a_half_done_flip(publish: Callable, make_syncer: Callable[..., Syncer],
                                                      dags: Path, store, tmp_path: Path) -> None:
    publish(A, sequence=1)
    make_syncer().sync(full=True)
    r2 = publish({**A, "alpha": ("2.0", {"dag_a.py": "a = 2\n"})}, sequence=2, write=True)
    # The crash: the new tree is in the store and the temp link exists, but the rename never happened.
    new_tree = r2.projects["alpha"].tree_name
    archive_path = tmp_path / "a.tar.gz"
    archive_path.write_bytes(store.objects[r2.projects["alpha"].archive_key])
    Volume(dags).install("alpha", new_tree, archive_path)
    os.symlink(f".dagsync/store/alpha/{new_tree}", dags / ".dagsync-link-alpha")
    syncer = make_syncer()
    assert not (dags / ".dagsync-link-alpha").is_symlink()  # undone at start
    assert (dags / "alpha" / "dag_a.py").read_text() == "a = 1\n"  # the old link is whole
    syncer.sync(full=True)  # ... and the first sync finishes the job properly (content re-verified)
    assert os.readlink(dags / "alpha") == f".dagsync/store/alpha/{new_tree}"
    assert (dags / "alpha" / "dag_a.py").read_text() == "a = 2\n"


def test_symlink_points_at_a_deleted_tree_after_restart(publish: Callable, make_syncer: Callable[..., Syncer],
                                                        dags: Path) -> None:
    rel = publish(A, sequence=1)
    make_syncer().sync(full=True)
    shutil.rmtree(dags / ".dagsync/store/beta" / rel.projects["beta"].tree_name)
    (dags / ".dagsync/state.json").unlink()  # and the state is gone too
    syncer = make_syncer()
    assert syncer.sync(full=True).outcome == "success"
    assert (dags / "beta" / "b.py").read_text() == "b\n"


def test_tree_renamed_into_store_but_state_not_saved(publish: Callable, make_syncer: Callable[..., Syncer],
                                                     dags: Path, store) -> None:
    """Crash between the rename into the store and the state write: the tree is whole, adopt it."""
    publish(A, sequence=1)
    make_syncer().sync(full=True)
    saved = (dags / ".dagsync/state.json").read_bytes()
    rel2 = publish({**A, "alpha": ("2.0", {"dag_a.py": "a = 2\n"})}, sequence=2)
    make_syncer().sync(full=True)
    (dags / ".dagsync/state.json").write_bytes(saved)  # state from before the second sync
    downloads = len(store.downloads)
    syncer = make_syncer()
    syncer.sync(full=True)
    assert len(store.downloads) == downloads
    assert syncer.state.links["alpha"] == rel2.projects["alpha"].tree_name


def test_fresh_volume_is_not_a_recovery(dags: Path) -> None:
    report = recover(Volume(dags / "new"))
    assert report.state_rebuilt is None and report.staging_removed == 0
