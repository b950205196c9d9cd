"""One sync cycle against an in-memory store: apply, keep the last good state, repair drift, retain."""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from botocore.exceptions import EndpointConnectionError

from dagsync.agent.executor import FETCH_WORKERS, in_order
from dagsync.agent.state import load_state
from dagsync.agent.sync import Syncer
from dagsync.core import keys, serde
from dagsync.core.models import HostStatus

A1 = {"alpha": ("1.0", {"dag_a.py": "a = 1\n", "lib/util.py": "u = 1\n"})}


def sample(syncer: Syncer, name: str, **labels: str) -> float | None:
    """A metric as the agent exposes it, from its own registry."""
    return syncer.metrics.registry.get_sample_value(name, labels)


def live(dags: Path) -> dict[str, str]:
    return {p.name: os.readlink(p) for p in sorted(dags.iterdir()) if p.is_symlink()}


def test_first_sync_links_every_project(publish: Callable, make_syncer: Callable[..., Syncer], dags: Path) -> None:
    rel = publish({**A1, "beta": ("2", {"b.py": "b\n"})}, sequence=1)
    result = make_syncer().sync(full=True)
    assert result.outcome == "success"
    assert live(dags) == {
        "alpha": f".dagsync/store/alpha/{rel.projects['alpha'].tree_name}",
        "beta": f".dagsync/store/beta/{rel.projects['beta'].tree_name}",
    }
    assert (dags / "alpha" / "lib" / "util.py").read_text() == "u = 1\n"
    state = load_state(dags / ".dagsync" / "state.json")
    assert state is not None and state.sequence == 1 and state.links["beta"] == rel.projects["beta"].tree_name
    assert ".dagsync" in (dags / ".airflowignore").read_text().splitlines()


def test_second_sync_is_a_noop_and_uses_a_conditional_get(publish: Callable, make_syncer: Callable[..., Syncer],
                                                          store) -> None:
    publish(A1, sequence=1)
    syncer = make_syncer()
    syncer.sync(full=True)
    downloads = len(store.downloads)
    assert syncer.sync(full=False).outcome == "noop"
    assert syncer.sync(full=True).outcome == "noop"
    assert len(store.downloads) == downloads


def test_new_version_flips_and_keeps_the_old_tree(publish: Callable, make_syncer: Callable[..., Syncer],
                                                  dags: Path) -> None:
    r1 = publish(A1, sequence=1)
    syncer = make_syncer(retention_grace=3600.0)
    syncer.sync(full=True)
    r2 = publish({"alpha": ("1.1", {"dag_a.py": "a = 2\n"})}, sequence=2)
    assert syncer.sync(full=False).outcome == "success"
    assert (dags / "alpha" / "dag_a.py").read_text() == "a = 2\n"
    trees = sorted(p.name for p in (dags / ".dagsync/store/alpha").iterdir())
    assert trees == sorted([r1.projects["alpha"].tree_name, r2.projects["alpha"].tree_name])


def test_older_release_never_replaces_a_newer_one(publish: Callable, make_syncer: Callable[..., Syncer],
                                                  store, dags: Path) -> None:
    publish({"alpha": ("2.0", {"dag_a.py": "new\n"})}, sequence=5)
    syncer = make_syncer()
    syncer.sync(full=True)
    publish({"alpha": ("1.0", {"dag_a.py": "old\n"})}, sequence=4)  # a late, older release.json
    assert syncer.sync(full=True).outcome == "noop"
    assert (dags / "alpha" / "dag_a.py").read_text() == "new\n"


def test_s3_error_keeps_everything(publish: Callable, make_syncer: Callable[..., Syncer], store,
                                   dags: Path) -> None:
    publish(A1, sequence=1)
    syncer = make_syncer()
    syncer.sync(full=True)
    before = live(dags)
    store.fail = EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
    result = syncer.sync(full=True)
    assert result.outcome == "error" and "Could not connect" in (result.error or "")
    assert syncer.failures == 1 and live(dags) == before


def test_missing_release_json_removes_nothing(publish: Callable, make_syncer: Callable[..., Syncer], store,
                                              dags: Path) -> None:
    publish(A1, sequence=1)
    syncer = make_syncer()
    syncer.sync(full=True)
    del store.objects[keys.RELEASE_KEY]
    syncer.release = None  # as after a restart
    result = syncer.sync(full=True)
    assert result.outcome == "error" and "not found" in (result.error or "")
    assert list(live(dags)) == ["alpha"]


def test_invalid_release_json_removes_nothing(publish: Callable, make_syncer: Callable[..., Syncer], store,
                                              dags: Path) -> None:
    publish(A1, sequence=1)
    syncer = make_syncer()
    syncer.sync(full=True)
    store.put(keys.RELEASE_KEY, b'{"sequence": 2, "projects": {}}')
    result = syncer.sync(full=True)
    assert result.outcome == "error" and "invalid" in (result.error or "")
    assert list(live(dags)) == ["alpha"]


def test_empty_release_removes_every_link_but_keeps_the_store(publish: Callable,
                                                              make_syncer: Callable[..., Syncer],
                                                              dags: Path) -> None:
    publish({**A1, "beta": ("1", {"b.py": ""})}, sequence=1)
    syncer = make_syncer(retention_grace=3600.0)
    syncer.sync(full=True)
    publish({}, sequence=2)
    assert syncer.sync(full=False).outcome == "success"
    assert live(dags) == {}
    assert sorted(p.name for p in (dags / ".dagsync/store").iterdir()) == ["alpha", "beta"]


def test_project_that_left_the_release_is_unlinked(publish: Callable, make_syncer: Callable[..., Syncer],
                                                   dags: Path) -> None:
    publish({**A1, "beta": ("1", {"b.py": ""})}, sequence=1)
    syncer = make_syncer()
    syncer.sync(full=True)
    publish(A1, sequence=2)
    syncer.sync(full=False)
    assert list(live(dags)) == ["alpha"]


def test_checksum_mismatch_keeps_the_old_version_and_reports(publish: Callable,
                                                             make_syncer: Callable[..., Syncer],
                                                             store, dags: Path) -> None:
    publish(A1, sequence=1)
    syncer = make_syncer()
    syncer.sync(full=True)
    rel = publish({"alpha": ("1.1", {"dag_a.py": "a = 2\n"})}, sequence=2)
    store.objects[rel.projects["alpha"].archive_key] += b"tampered"  # size and sha256 no longer match
    result = syncer.sync(full=False)
    assert result.outcome == "error" and "alpha" in (result.error or "")
    assert (dags / "alpha" / "dag_a.py").read_text() == "a = 1\n"
    assert list((dags / ".dagsync/staging").iterdir()) == []
    assert syncer.state.sequence == 1  # not applied completely: not reported as applied


def test_deleted_link_is_repaired(publish: Callable, make_syncer: Callable[..., Syncer], dags: Path) -> None:
    publish(A1, sequence=1)
    syncer = make_syncer()
    syncer.sync(full=True)
    (dags / "alpha").unlink()
    assert syncer.sync(full=True).outcome == "success"
    assert (dags / "alpha" / "dag_a.py").exists()
    assert sample(syncer, "dagsync_agent_drift_repairs_total", kind="link") == 1


def test_retargeted_link_is_repaired(publish: Callable, make_syncer: Callable[..., Syncer], dags: Path,
                                     tmp_path: Path) -> None:
    publish(A1, sequence=1)
    syncer = make_syncer()
    syncer.sync(full=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (dags / "alpha").unlink()
    (dags / "alpha").symlink_to(elsewhere)
    syncer.sync(full=True)
    assert os.readlink(dags / "alpha").startswith(".dagsync/store/alpha/")


def test_modified_file_in_the_store_is_repaired_by_the_stat_check(publish: Callable,
                                                                  make_syncer: Callable[..., Syncer],
                                                                  dags: Path) -> None:
    publish(A1, sequence=1)
    syncer = make_syncer()
    syncer.sync(full=True)
    (dags / "alpha" / "dag_a.py").write_text("a = 666  # edited by hand\n")
    assert syncer.sync(full=True).outcome == "success"
    assert (dags / "alpha" / "dag_a.py").read_text() == "a = 1\n"
    assert sample(syncer, "dagsync_agent_drift_repairs_total", kind="tree") == 1


def test_deleted_file_in_the_store_is_repaired(publish: Callable, make_syncer: Callable[..., Syncer],
                                               dags: Path) -> None:
    publish(A1, sequence=1)
    syncer = make_syncer()
    syncer.sync(full=True)
    (dags / "alpha" / "lib" / "util.py").unlink()
    syncer.sync(full=True)
    assert (dags / "alpha" / "lib" / "util.py").read_text() == "u = 1\n"


def test_same_size_same_mtime_edit_is_caught_by_the_digest_check(publish: Callable,
                                                                 make_syncer: Callable[..., Syncer],
                                                                 dags: Path) -> None:
    publish(A1, sequence=1)
    syncer = make_syncer(digest_every=2)
    syncer.sync(full=True)  # full cycle 0: digest
    path = dags / "alpha" / "dag_a.py"
    st = path.stat()
    path.write_text("a = 9\n")  # same size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime: the stat check cannot see it
    syncer.sync(full=True)  # cycle 1: stat only
    assert path.read_text() == "a = 9\n"
    syncer.sync(full=True)  # cycle 2: digest
    assert path.read_text() == "a = 1\n"


def test_entries_not_owned_are_left_alone_and_reported(publish: Callable, make_syncer: Callable[..., Syncer],
                                                       dags: Path) -> None:
    (dags / "handmade_dag.py").write_text("# mine\n")
    (dags / "alpha").mkdir()  # a real folder where a project link should go
    publish({**A1, "beta": ("1", {"b.py": ""})}, sequence=1)
    syncer = make_syncer()
    result = syncer.sync(full=True)
    assert result.outcome == "error" and "alpha" in (result.error or "")
    assert (dags / "handmade_dag.py").read_text() == "# mine\n" and (dags / "alpha").is_dir()
    assert (dags / "beta").is_symlink()
    assert sample(syncer, "dagsync_agent_unowned_entries") == 2


def test_retention_keeps_the_last_n_versions(publish: Callable, make_syncer: Callable[..., Syncer],
                                             dags: Path) -> None:
    syncer = make_syncer(keep_versions=2, retention_grace=0.0)
    trees = []
    for n in range(1, 5):
        rel = publish({"alpha": (f"{n}.0", {"dag_a.py": f"a = {n}\n"})}, sequence=n)
        trees.append(rel.projects["alpha"].tree_name)
        syncer.sync(full=True)
    assert sorted(p.name for p in (dags / ".dagsync/store/alpha").iterdir()) == sorted(trees[-2:])


def test_retention_grace_keeps_old_trees_for_running_tasks(publish: Callable,
                                                           make_syncer: Callable[..., Syncer],
                                                           dags: Path) -> None:
    syncer = make_syncer(keep_versions=1, retention_grace=3600.0)
    for n in range(1, 4):
        publish({"alpha": (f"{n}.0", {"dag_a.py": f"a = {n}\n"})}, sequence=n)
        syncer.sync(full=True)
    assert len(list((dags / ".dagsync/store/alpha").iterdir())) == 3


def test_host_status_is_written_after_apply_and_on_error(publish: Callable, make_syncer: Callable[..., Syncer],
                                                         store, dags: Path) -> None:
    release = publish({**A1, "beta": ("2", {"b.py": "b\n"})}, sequence=3)
    syncer = make_syncer()
    syncer.sync(full=True)
    status = serde.load_json(HostStatus, store.objects[keys.host_status_key("host-a")], "status")
    assert (status.sequence, status.against, status.differences, status.last_error) == (3, 3, {}, None)
    assert status.live(release) == {"alpha": "1.0", "beta": "2"} and status.projects == {}
    # A host that does not run a project of the release says so, and only that
    (dags / "beta").unlink()
    (dags / "beta").write_text("not dagsync's\n")  # an entry dagsync does not own holds the name
    syncer.sync(full=True)
    status = serde.load_json(HostStatus, store.objects[keys.host_status_key("host-a")], "status")
    assert status.differences == {"beta": None} and status.live(release) == {"alpha": "1.0"}
    store.put(keys.RELEASE_KEY, b"{broken")
    syncer.sync(full=True)
    status = serde.load_json(HostStatus, store.objects[keys.host_status_key("host-a")], "status")
    assert status.sequence == 3 and "release.json" in (status.last_error or "")


def test_state_json_is_valid_json_after_every_sync(publish: Callable, make_syncer: Callable[..., Syncer],
                                                   dags: Path) -> None:
    publish(A1, sequence=1)
    make_syncer().sync(full=True)
    data = json.loads((dags / ".dagsync/state.json").read_text())
    assert data["sequence"] == 1 and not list((dags / ".dagsync").glob("*.tmp"))


def test_symlink_points_at_a_deleted_tree(publish: Callable, make_syncer: Callable[..., Syncer],
                                          dags: Path) -> None:
    rel = publish(A1, sequence=1)
    make_syncer().sync(full=True)
    shutil.rmtree(dags / ".dagsync/store/alpha" / rel.projects["alpha"].tree_name)
    syncer = make_syncer()  # a restart
    assert syncer.sync(full=True).outcome == "success"
    assert (dags / "alpha" / "dag_a.py").read_text() == "a = 1\n"


def test_full_disk_during_download_keeps_the_old_tree_and_staging_clean(
    publish: Callable, make_syncer: Callable[..., Syncer], store, dags: Path, monkeypatch
) -> None:
    publish(A1, sequence=1)
    syncer = make_syncer()
    syncer.sync(full=True)
    publish({"alpha": ("2.0", {"dag_a.py": "a = 2\n"})}, sequence=2)

    def full_disk(key: str, fileobj, *, on_bytes=None) -> None:
        fileobj.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store, "download", full_disk)
    result = syncer.sync(full=False)
    assert result.outcome == "error" and "disk full" in (result.error or "")
    assert (dags / "alpha" / "dag_a.py").read_text() == "a = 1\n"
    assert list((dags / ".dagsync/staging").iterdir()) == []


def test_stop_request_finishes_the_current_step_and_flips_nothing_half_done(
    publish: Callable, make_syncer: Callable[..., Syncer], store, dags: Path, monkeypatch
) -> None:
    projects = [f"p{i}" for i in range(FETCH_WORKERS + 2)]
    publish({p: ("1", {f"{p}.py": "1"}) for p in projects}, sequence=1)
    syncer = make_syncer()
    real = store.download

    def download_then_sigterm(key: str, fileobj, *, on_bytes=None) -> None:
        real(key, fileobj, on_bytes=on_bytes)
        syncer.stop.set()  # SIGTERM arrives during the first download

    monkeypatch.setattr(store, "download", download_then_sigterm)
    syncer.sync(full=True)
    # The fetches already under way (at most FETCH_WORKERS at once) finish; no further fetch starts.
    assert 1 <= len(store.downloads) <= FETCH_WORKERS < len(projects)
    assert [p.name for p in dags.iterdir() if p.is_symlink()] == []  # no flip after a stop request
    assert syncer.state.sequence == 0 and list((dags / ".dagsync/staging").iterdir()) == []


def test_fetches_are_taken_in_plan_order_with_a_bounded_number_submitted_ahead() -> None:
    # Given 100 steps, drawn one by one (a cold sync of 10,000 projects once submitted them all at once)
    drawn: list[int] = []

    def steps() -> Iterator[int]:
        for i in range(100):
            drawn.append(i)
            yield i

    with ThreadPoolExecutor(max_workers=4) as pool:
        for taken, (step, future) in enumerate(in_order(pool, lambda i: i * i, steps(), 8)):
            # Then each comes back in order with its own result, and no more than 8 were submitted ahead of it
            assert step == taken and future.result() == step * step
            assert len(drawn) <= taken + 8
    assert drawn == list(range(100))
