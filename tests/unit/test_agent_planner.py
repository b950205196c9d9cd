"""The planner is pure: plain values in, a Plan out."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dagsync.agent.planner import Fetch, Link, LocalView, UnknownProject, plan, plan_retention
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
    local = LocalView(sequence=3, links={"alpha": "1-aaaaaaaaaaaa"}, trees={"alpha": {"1-aaaaaaaaaaaa"}})
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


def test_blocked_name_is_left_alone() -> None:
    got = plan(release(1, alpha=entry("1")), LocalView(blocked={"alpha"}))
    assert got.empty and got.blocked == ("alpha",)


def test_only_touches_named_projects_and_removes_nothing() -> None:
    rel = release(2, alpha=entry("1"), beta=entry("2", "b"))
    got = plan(rel, LocalView(links={"zeta": "1-x"}), only={"beta"})
    assert [f.project for f in got.fetch] == ["beta"]
    assert got.unlink == ()


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
