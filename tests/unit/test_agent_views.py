"""Release views, fresh mtimes and holds: one `current` flip per release, a rollback that Airflow sees at once, and
retention that never deletes what a running task holds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dagsync.agent import holds, views
from dagsync.agent.state import listing_digest
from dagsync.agent.sync import Syncer
from dagsync.agent.volume import Volume, tree_listing

A1 = {"alpha": ("1.0", {"dag_a.py": "a = 1\n"}), "lib": ("1.0", {"shared.py": "VERSION = 1\n"})}


def trees(rel) -> dict[str, str]:
    return {p: e.tree_name for p, e in rel.projects.items()}


def first_release_without_retention_slack(publish: Callable, make_syncer: Callable[..., Syncer]) -> tuple[Any, Syncer]:
    """Release 1 applied by an agent that keeps one tree per project and deletes retired ones at once."""
    r1 = publish(A1, sequence=1)
    syncer = make_syncer(keep_versions=1, retention_grace=0.0)
    syncer.sync(full=True)
    return r1, syncer


def test_a_release_is_one_view_and_current_flips_to_it_with_one_rename(
    publish: Callable, make_syncer: Callable[..., Syncer], dags: Path
) -> None:
    # Given release 1 applied
    r1 = publish(A1, sequence=1)
    syncer = make_syncer(retention_grace=3600.0)
    syncer.sync(full=True)
    assert os.readlink(dags / ".dagsync/current") == "views/1"
    assert views.read_view(dags / ".dagsync/views/1") == trees(r1)
    # When release 2 changes the shared library and the project importing it
    r2 = publish({"alpha": ("2.0", {"dag_a.py": "a = 2\n"}), "lib": ("2.0", {"shared.py": "VERSION = 2\n"})},
                 sequence=2)
    assert syncer.sync(full=False).outcome == "success"
    # Then current shows both new trees through one link, and view 1 still shows both old ones
    current = dags / ".dagsync/current"
    assert os.readlink(current) == "views/2"
    assert (current / "alpha/dag_a.py").read_text() == "a = 2\n" and (current / "lib/shared.py").read_text() == \
        "VERSION = 2\n"
    assert (dags / ".dagsync/views/1/lib/shared.py").read_text() == "VERSION = 1\n"
    assert views.current_view(Volume(dags)) == (2, trees(r2))
    # And the classic per-project links are kept as before
    assert os.readlink(dags / "alpha") == f".dagsync/store/alpha/{r2.projects['alpha'].tree_name}"


def test_a_rolled_back_tree_gets_fresh_mtimes_and_the_stat_check_sees_no_drift(
    publish: Callable, make_syncer: Callable[..., Syncer], dags: Path, store
) -> None:
    # Given version 1.0 then 2.0 applied, with 1.0's tree still in the store and its files long unchanged
    r1 = publish(A1, sequence=1)
    syncer = make_syncer(retention_grace=3600.0)
    syncer.sync(full=True)
    publish({**A1, "alpha": ("2.0", {"dag_a.py": "a = 2\n"})}, sequence=2)
    syncer.sync(full=False)
    tree = r1.projects["alpha"].tree_name
    os.utime(dags / ".dagsync/views/1/alpha/dag_a.py", (1_577_836_800, 1_577_836_800))  # extracted long ago
    syncer.state.trees["alpha"][tree].listing = listing_digest(tree_listing(dags / ".dagsync/store/alpha" / tree))
    downloads = len(store.downloads)
    # When alpha rolls back to 1.0
    before = time.time()
    publish(A1, sequence=3)
    syncer.sync(full=False)
    # Then its files are newer than the rollback (so Airflow re-parses them at once), nothing was downloaded,
    # and the next full reconcile with the stat check finds no drift to repair
    assert (dags / ".dagsync/current/alpha/dag_a.py").stat().st_mtime >= before
    assert len(store.downloads) == downloads
    assert syncer.sync(full=True).outcome == "noop"
    assert len(store.downloads) == downloads


def test_a_name_dagsync_does_not_own_blocks_its_link_but_not_the_release_view(
    publish: Callable, make_syncer: Callable[..., Syncer], dags: Path
) -> None:
    (dags / "alpha").mkdir()  # someone's own folder in the DAG folder
    r1 = publish(A1, sequence=1)
    result = make_syncer().sync(full=True)
    assert result.outcome == "error" and "not dagsync's" in (result.error or "")
    assert not (dags / "alpha").is_symlink()
    assert views.current_view(Volume(dags)) == (1, trees(r1))
    assert (dags / ".dagsync/current/alpha/dag_a.py").read_text() == "a = 1\n"


def test_retention_keeps_every_tree_a_running_task_holds(
    publish: Callable, make_syncer: Callable[..., Syncer], dags: Path
) -> None:
    # Given release 1, and a task pinned to it holding its trees
    r1, syncer = first_release_without_retention_slack(publish, make_syncer)
    volume = Volume(dags)
    with holds.volume_lock(volume, timeout=None):
        fd = holds.hold(volume, 1, trees(r1))
    # When releases 2 and 3 replace every project and retention runs (keep 1, no grace)
    publish({"alpha": ("2.0", {"dag_a.py": "a = 2\n"}), "lib": ("2.0", {"shared.py": "2\n"})}, sequence=2)
    syncer.sync(full=True)
    r3 = publish({"alpha": ("3.0", {"dag_a.py": "a = 3\n"}), "lib": ("3.0", {"shared.py": "3\n"})}, sequence=3)
    syncer.sync(full=True)
    # Then release 1's trees are still there, and release 2's (held by nobody) are gone
    for project, tree in trees(r1).items():
        assert volume.tree_path(project, tree).is_dir(), project
    assert sorted(volume.list_trees()["alpha"]) == sorted([r1.projects["alpha"].tree_name,
                                                          r3.projects["alpha"].tree_name])
    assert views.list_views(volume) == [1, 3]
    # When the task ends (its process closes the file, as an exit or a SIGKILL does)
    os.close(fd)
    syncer.sync(full=True)
    # Then the trees, the view and the hold file go at the next reconcile
    assert volume.list_trees()["alpha"] == [r3.projects["alpha"].tree_name]
    assert views.list_views(volume) == [3]
    assert list(holds.holds_dir(volume).iterdir()) == []


def test_retention_waits_while_a_task_is_materializing_a_release(
    publish: Callable, make_syncer: Callable[..., Syncer], dags: Path
) -> None:
    r1, syncer = first_release_without_retention_slack(publish, make_syncer)
    publish({**A1, "alpha": ("2.0", {"dag_a.py": "a = 2\n"})}, sequence=2)
    volume = Volume(dags)
    with holds.volume_lock(volume, timeout=None) as locked:
        assert locked
        syncer.sync(full=True)  # flips, but does not wait for the lock and deletes nothing
        assert volume.tree_path("alpha", r1.projects["alpha"].tree_name).is_dir()
    syncer.sync(full=True)
    assert not volume.tree_path("alpha", r1.projects["alpha"].tree_name).exists()


def two_views_kept_with_a_keep_of_one(publish: Callable, make_syncer: Callable[..., Syncer],
                                      dags: Path) -> tuple[Syncer, Volume]:
    """Releases 1 and 2 applied by an agent that keeps one view besides the current one: the next view recycles."""
    publish(A1, sequence=1)
    syncer = make_syncer(retention_grace=3600.0, keep_views=1)
    syncer.sync(full=True)
    publish({**A1, "alpha": ("2.0", {"dag_a.py": "a = 2\n"})}, sequence=2)
    syncer.sync(full=False)
    volume = Volume(dags)
    assert views.list_views(volume) == [1, 2]
    return syncer, volume


def test_once_enough_views_are_kept_the_oldest_is_repaired_into_the_new_one_not_rebuilt(
    publish: Callable, make_syncer: Callable[..., Syncer], dags: Path
) -> None:
    # Given an agent that keeps one view besides the current one, and releases 1 and 2 applied
    syncer, volume = two_views_kept_with_a_keep_of_one(publish, make_syncer, dags)
    folder, lib_link = os.stat(dags / ".dagsync/views/1").st_ino, os.lstat(dags / ".dagsync/views/1/lib").st_ino
    # When release 3 changes alpha again
    r3 = publish({**A1, "alpha": ("3.0", {"dag_a.py": "a = 3\n"})}, sequence=3)
    assert syncer.sync(full=False).outcome == "success"
    # Then view 1 became view 3 (same folder), only alpha's link was written, and view 2 is untouched
    assert views.list_views(volume) == [2, 3] and views.current_view(volume) == (3, trees(r3))
    assert os.stat(dags / ".dagsync/views/3").st_ino == folder
    assert os.lstat(dags / ".dagsync/views/3/lib").st_ino == lib_link
    assert (dags / ".dagsync/current/alpha/dag_a.py").read_text() == "a = 3\n"
    assert (dags / ".dagsync/views/2/alpha/dag_a.py").read_text() == "a = 2\n"
    assert list(volume.staging.iterdir()) == []


def test_a_view_is_not_recycled_while_a_task_holds_the_volume_lock(
    publish: Callable, make_syncer: Callable[..., Syncer], dags: Path
) -> None:
    # Given two views kept with a keep of one, and a task materializing a release (the volume lock held)
    syncer, volume = two_views_kept_with_a_keep_of_one(publish, make_syncer, dags)
    r1_lib = views.read_view(dags / ".dagsync/views/1")
    r3 = publish({**A1, "alpha": ("3.0", {"dag_a.py": "a = 3\n"})}, sequence=3)
    with holds.volume_lock(volume, timeout=None) as locked:
        assert locked
        # When release 3 arrives
        assert syncer.sync(full=False).outcome == "success"
        # Then it gets a new folder, and the view the task may be reading is as it was
        assert views.list_views(volume) == [1, 2, 3] and views.current_view(volume) == (3, trees(r3))
        assert views.read_view(dags / ".dagsync/views/1") == r1_lib


def test_the_view_an_apply_wrote_is_not_read_again_yet_a_change_to_it_is_still_seen(
    publish: Callable, make_syncer: Callable[..., Syncer], dags: Path, monkeypatch: Any
) -> None:
    # Given release 2 applied from a change: the agent wrote view 2
    publish(A1, sequence=1)
    syncer = make_syncer(retention_grace=3600.0)
    syncer.sync(full=True)
    r2 = publish({**A1, "alpha": ("2.0", {"dag_a.py": "a = 2\n"})}, sequence=2)
    syncer.sync(full=False)
    # When the scan asks for the current view, with reading a view link made to fail
    real = views.tree_of

    def unread(project: str, target: str) -> str | None:
        raise AssertionError(f"view link {project} read again")

    monkeypatch.setattr(views, "tree_of", unread)
    syncer.watch.drain()
    # Then it has it without reading it
    assert syncer.reader.current_view() == (2, trees(r2))
    # And when someone points a view link elsewhere, the next look reads that link, and sees it
    monkeypatch.setattr(views, "tree_of", real)
    views.replace_link(dags / ".dagsync/views/2/lib", "../../store/lib/elsewhere")
    syncer.watch.drain()
    assert syncer.reader.current_view() == (2, {"alpha": r2.projects["alpha"].tree_name, "lib": "elsewhere"})


def test_a_view_naming_a_tree_missing_from_the_store_is_not_written(dags: Path) -> None:
    volume = Volume(dags)
    volume.ensure_layout()
    (volume.store / "alpha/1.0-aaaaaaaaaaaa").mkdir(parents=True)
    wanted = {"alpha": "1.0-aaaaaaaaaaaa", "lib": "1.0-bbbbbbbbbbbb"}
    try:
        views.write_view(volume, 1, wanted, verify=["lib"])
    except views.TreesMissing as exc:
        assert exc.projects == ["lib"]
    else:
        raise AssertionError("a view naming lib's missing tree was written")
    assert views.list_views(volume) == [] and views.current_sequence(volume) is None
    views.write_view(volume, 1, wanted, verify=["alpha"])  # the caller vouches for lib: trusted, as the scan is
    assert views.current_view(volume) == (1, wanted)


def test_a_hold_file_deleted_between_open_and_lock_is_made_again(dags: Path) -> None:
    volume = Volume(dags)
    volume.ensure_layout()
    fd = holds.hold(volume, 7, {"alpha": "1-a"})
    os.close(fd)
    with holds.volume_lock(volume, timeout=None):
        assert holds.held_trees(volume) == set()  # nobody holds it: deleted
    assert list(holds.holds_dir(volume).iterdir()) == []
    fd = holds.hold(volume, 7, {"alpha": "1-a"})
    try:
        assert holds.held_trees(volume) == {("alpha", "1-a")}
    finally:
        os.close(fd)


def test_the_volume_lock_is_one_holder_at_a_time_across_threads(dags: Path) -> None:
    volume = Volume(dags)
    inside: list[int] = []
    overlap = threading.Event()

    def work(n: int) -> None:
        with holds.volume_lock(volume, timeout=10) as locked:
            assert locked
            if inside:
                overlap.set()
            inside.append(n)
            time.sleep(0.02)
            inside.remove(n)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not overlap.is_set()
    with holds.volume_lock(volume, timeout=None), holds.volume_lock(volume, timeout=0) as second:
        assert second is False


def test_a_temp_current_link_left_by_a_crash_is_removed_at_start(
    publish: Callable, make_syncer: Callable[..., Syncer], dags: Path
) -> None:
    publish(A1, sequence=1)
    make_syncer().sync(full=True)
    os.symlink("views/9", dags / ".dagsync/.tmp-current-deadbeef")
    make_syncer()
    assert not os.path.lexists(dags / ".dagsync/.tmp-current-deadbeef")
    assert os.readlink(dags / ".dagsync/current") == "views/1"


def test_a_hold_ends_with_a_task_killed_by_sigkill(dags: Path) -> None:
    volume = Volume(dags)
    volume.ensure_layout()
    code = ("import sys, time; from pathlib import Path; from dagsync.agent import holds; "
            "from dagsync.agent.volume import Volume; v = Volume(Path(sys.argv[1])); "
            "holds.hold(v, 3, {'alpha': '1-a'}); print('held', flush=True); time.sleep(60)")
    task = subprocess.Popen([sys.executable, "-c", code, str(dags)], stdout=subprocess.PIPE, text=True)
    try:
        assert task.stdout is not None and task.stdout.readline().strip() == "held"
        with holds.volume_lock(volume, timeout=10):
            assert holds.held_trees(volume) == {("alpha", "1-a")}
        task.send_signal(signal.SIGKILL)
        task.wait(10)
        with holds.volume_lock(volume, timeout=10):
            assert holds.held_trees(volume) == set()
    finally:
        task.kill()
        task.wait()


def test_keep_views_bounds_the_old_views_a_host_keeps(
    publish: Callable, make_syncer: Callable[..., Syncer], dags: Path
) -> None:
    # Given an agent told to keep no view besides the current one (--keep-views 0), and releases 1 and 2 applied
    publish(A1, sequence=1)
    syncer = make_syncer(retention_grace=3600.0, keep_views=0)
    syncer.sync(full=True)
    r2 = publish({**A1, "alpha": ("2.0", {"dag_a.py": "a = 2\n"})}, sequence=2)
    syncer.sync(full=False)
    # When the next full reconcile runs retention
    syncer.sync(full=True)
    # Then only the current view is left, and it is release 2's
    volume = Volume(dags)
    assert views.list_views(volume) == [2] and views.current_view(volume) == (2, trees(r2))


def test_the_view_log_knows_what_differs_only_for_a_view_as_it_was_written(tmp_path: Path) -> None:
    log = views.ViewLog()
    view = tmp_path / "3"
    view.mkdir()
    os.symlink("../../store/a/1-x", view / "a")
    log.wrote(3, view)
    log.changed(4, {"a"})
    log.changed(5, {"b"})
    assert log.differing(3, view, 5) == {"a", "b"}
    assert log.differing(3, view, 5) is None  # spent: the view is being recycled
    log.wrote(3, view)
    assert log.differing(3, view, 6) is None  # release 6's changes are not known
    log.wrote(3, view)
    (view / "a").unlink()  # an entry removed (or replaced) since it was written
    os.symlink("../../store/a/2-y", view / "a")
    assert log.differing(3, view, 5) is None
    log.changed(6, {f"p{i}" for i in range(views.ViewLog.MAX_NAMES + 1)})  # too many to keep
    log.wrote(3, view)
    assert log.differing(3, view, 6) is None
