"""The planner is pure: plain values in, a Plan out."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from dagsync.agent.planner import (
    Fetch,
    Link,
    LocalView,
    UnknownProject,
    View,
    plan,
    plan_retention,
    plan_view_retention,
)
from dagsync.core.models import Release, ReleasedProject


def entry(version: str, digit: str = "a") -> ReleasedProject:
    return ReleasedProject(version=version, archive_key=f"projects/x/{version}/dags.tar.gz", sha256=digit * 64,
                           size=10, files=1, uncompressed_size=10)


def release(sequence: int, **projects: ReleasedProject) -> Release:
    return Release(sequence=sequence, manifest_etag='"m"', published_at=datetime(2026, 1, 1, tzinfo=UTC),
                   projects=projects)


def test_empty_volume_fetches_and_links_everything() -> None:
    rel = release(1, alpha=entry("1"), beta=entry("2", "b"))
    got = plan(rel, LocalView())
    assert got.fetch == (Fetch("alpha", entry("1")), Fetch("beta", entry("2", "b")))
    assert got.link == (Link("alpha", "1-aaaaaaaaaaaa"), Link("beta", "2-bbbbbbbbbbbb"))
    assert got.unlink == ()


def test_in_sync_volume_is_an_empty_plan() -> None:
    rel = release(3, alpha=entry("1"))
    local = LocalView(sequence=3, links={"alpha": "1-aaaaaaaaaaaa"}, trees={"alpha": {"1-aaaaaaaaaaaa"}},
                      view=3, view_trees={"alpha": "1-aaaaaaaaaaaa"})
    assert plan(rel, local).empty


def test_tree_already_in_store_is_linked_without_fetching() -> None:
    rel = release(4, alpha=entry("1"))
    local = LocalView(sequence=3, links={"alpha": "2-cccccccccccc"},
                      trees={"alpha": {"1-aaaaaaaaaaaa", "2-cccccccccccc"}})
    got = plan(rel, local)
    assert got.fetch == ()
    assert got.link == (Link("alpha", "1-aaaaaaaaaaaa"),)


def test_older_release_is_never_applied() -> None:
    rel = release(2, alpha=entry("old"))
    got = plan(rel, LocalView(sequence=5, links={"alpha": "new-aaaaaaaaaaaa"}))
    assert got.stale and got.empty


def test_project_that_left_the_release_is_unlinked() -> None:
    rel = release(2, alpha=entry("1"))
    local = LocalView(sequence=1, links={"alpha": "1-aaaaaaaaaaaa", "gone": "1-dddddddddddd"},
                      trees={"alpha": {"1-aaaaaaaaaaaa"}})
    assert plan(rel, local).unlink == ("gone",)


def test_empty_release_unlinks_everything() -> None:
    got = plan(release(2), LocalView(sequence=1, links={"a": "1-x", "b": "1-y"}))
    assert got.unlink == ("a", "b")


def test_damaged_tree_missing_from_view_is_fetched_and_relinked() -> None:
    rel = release(1, alpha=entry("1"))
    got = plan(rel, LocalView(sequence=1, links={"alpha": "1-aaaaaaaaaaaa"}, trees={}))
    assert [f.project for f in got.fetch] == ["alpha"]
    assert got.link == (Link("alpha", "1-aaaaaaaaaaaa"),)


def test_blocked_name_is_left_alone_in_the_dag_folder_but_is_in_the_release_view() -> None:
    # Given a name in the DAG folder that dagsync does not own
    got = plan(release(1, alpha=entry("1")), LocalView(blocked={"alpha"}))
    # Then it is never linked over, but its tree is fetched into the store for the release view
    assert got.blocked == ("alpha",) and got.link == ()
    assert got.fetch == (Fetch("alpha", entry("1")),)
    assert got.view is not None and dict(got.view.trees) == {"alpha": "1-aaaaaaaaaaaa"}


def test_only_touches_named_projects_and_removes_nothing() -> None:
    rel = release(2, alpha=entry("1"), beta=entry("2", "b"))
    got = plan(rel, LocalView(links={"zeta": "1-x"}), only={"beta"})
    assert [f.project for f in got.fetch] == ["beta"]
    assert got.unlink == ()


def test_changed_compares_only_those_projects_and_still_writes_the_whole_view() -> None:
    # Given a volume known to hold release 3, where release 4 changes beta and retires gamma: the local view says
    # nothing of alpha (it is not read), and alpha is left as it is
    rel = release(4, alpha=entry("1"), beta=entry("3", "c"))
    local = LocalView(sequence=3, links={"beta": "2-bbbbbbbbbbbb", "gamma": "1-dddddddddddd"},
                      trees={"beta": {"2-bbbbbbbbbbbb"}, "gamma": {"1-dddddddddddd"}},
                      view=3, view_trees={"beta": "2-bbbbbbbbbbbb", "gamma": "1-dddddddddddd"})
    got = plan(rel, local, changed={"beta", "gamma"})
    assert got.fetch == (Fetch("beta", entry("3", "c")),) and got.link == (Link("beta", "3-cccccccccccc"),)
    assert got.touch == (Link("beta", "3-cccccccccccc"),) and got.unlink == ("gamma",)
    assert got.view == View(4, {"alpha": "1-aaaaaaaaaaaa", "beta": "3-cccccccccccc"})


def test_only_with_a_project_not_in_the_release_is_an_error() -> None:
    with pytest.raises(UnknownProject, match="nope"):
        plan(release(2, alpha=entry("1")), LocalView(), only={"nope"})


def test_retention_keeps_the_live_tree_and_the_newest_retired_ones() -> None:
    history = {"alpha": {"v4": None, "v3": 300.0, "v2": 200.0, "v1": 100.0}}
    assert plan_retention(history, keep=2, grace=0, now=1000) == [("alpha", "v2"), ("alpha", "v1")]
    assert plan_retention(history, keep=3, grace=0, now=1000) == [("alpha", "v1")]


def test_retention_waits_for_the_grace_period() -> None:
    history = {"alpha": {"v3": None, "v2": 950.0, "v1": 900.0}}
    assert plan_retention(history, keep=1, grace=60, now=1000) == [("alpha", "v1")]


def test_retention_of_a_removed_project_keeps_its_last_versions() -> None:
    history = {"gone": {"v2": 500.0, "v1": 100.0}}
    assert plan_retention(history, keep=1, grace=0, now=1000) == [("gone", "v1")]


def test_a_release_gets_one_view_of_every_project_and_fresh_mtimes_on_what_changes() -> None:
    # Given a host on release 3 (view 3 current) and release 4 that changes beta only
    rel = release(4, alpha=entry("1"), beta=entry("3", "c"))
    local = LocalView(sequence=3, links={"alpha": "1-aaaaaaaaaaaa", "beta": "2-bbbbbbbbbbbb"},
                      trees={"alpha": {"1-aaaaaaaaaaaa"}, "beta": {"2-bbbbbbbbbbbb"}},
                      view=3, view_trees={"alpha": "1-aaaaaaaaaaaa", "beta": "2-bbbbbbbbbbbb"})
    got = plan(rel, local)
    # Then the view of release 4 names every project, and only beta's new tree is touched and flipped
    assert got.view == View(4, {"alpha": "1-aaaaaaaaaaaa", "beta": "3-cccccccccccc"})
    assert got.touch == (Link("beta", "3-cccccccccccc"),) and got.link == (Link("beta", "3-cccccccccccc"),)


def test_a_rollback_to_a_tree_in_the_store_touches_it_before_it_is_linked_again() -> None:
    rel = release(5, alpha=entry("1"))
    local = LocalView(sequence=4, links={"alpha": "2-cccccccccccc"},
                      trees={"alpha": {"1-aaaaaaaaaaaa", "2-cccccccccccc"}},
                      view=4, view_trees={"alpha": "2-cccccccccccc"})
    got = plan(rel, local)
    assert got.fetch == () and got.touch == (Link("alpha", "1-aaaaaaaaaaaa"),)


def test_a_damaged_view_is_written_again_even_for_the_same_release() -> None:
    rel = release(3, alpha=entry("1"), beta=entry("2", "b"))
    local = LocalView(sequence=3, links={"alpha": "1-aaaaaaaaaaaa", "beta": "2-bbbbbbbbbbbb"},
                      trees={"alpha": {"1-aaaaaaaaaaaa"}, "beta": {"2-bbbbbbbbbbbb"}},
                      view=3, view_trees={"alpha": "1-aaaaaaaaaaaa"})  # beta's link in the view was deleted
    got = plan(rel, local)
    assert got.view == View(3, {"alpha": "1-aaaaaaaaaaaa", "beta": "2-bbbbbbbbbbbb"}) and got.link == ()


def test_only_some_projects_makes_no_release_view() -> None:
    got = plan(release(2, alpha=entry("1"), beta=entry("2", "b")), LocalView(), only={"beta"})
    assert got.view is None and got.touch == (Link("beta", "2-bbbbbbbbbbbb"),)


def test_view_retention_drops_views_with_missing_trees_and_the_oldest_beyond_keep() -> None:
    known = {1: {"a": "t1"}, 2: {"a": "t2"}, 3: {"a": "t3"}, 4: {"a": "t4"}, 5: {"a": "t5"}}
    present = {("a", "t2"), ("a", "t3"), ("a", "t4"), ("a", "t5")}
    # view 1 names a deleted tree; of the whole ones (2, 3, 4) beside the current (5), two are kept
    assert plan_view_retention(known, present=present, current=5, keep=2) == [1, 2]
    # the current view is never dropped, even when a tree it names is gone
    assert plan_view_retention(known, present=set(), current=5, keep=10) == [1, 2, 3, 4]


def test_protection_only_keeps_more_so_retention_may_skip_the_holds_when_nothing_would_go() -> None:
    # Retention reads the holds and the current view only when the unprotected plan removes something
    # (dagsync/agent/retention.py): that is sound only if protecting trees never makes another tree go.
    rng = random.Random(12)
    for _ in range(2000):
        trees = {f"v{i}": rng.choice([None, float(rng.randint(0, 100))]) for i in range(rng.randint(1, 5))}
        keep, grace = rng.randint(1, 3), float(rng.randint(0, 100))
        protected = {t for t in trees if rng.random() < 0.4}
        shielded = {t: None if t in protected else at for t, at in trees.items()}
        if len(trees) <= keep:  # and a project with no more trees than `keep` has none to remove
            assert plan_retention({"p": shielded}, keep=keep, grace=grace, now=100.0) == []
        if not plan_retention({"p": trees}, keep=keep, grace=grace, now=100.0):
            assert plan_retention({"p": shielded}, keep=keep, grace=grace, now=100.0) == []
