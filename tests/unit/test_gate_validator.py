"""The validator's decisions against the fake store: noop, accepted (sequence + 1, one event), rejected (reason
recorded, release untouched), already rejected, and starting over when release.json changed under it."""

from __future__ import annotations

import pytest

from dagsync.core import keys
from dagsync.core.dagcheck import duplicate_dag_ids
from dagsync.core.documents import read_rejection, read_release
from dagsync.publish.publisher import promote, publish
from tests.support.gate import Recorder, baseline, set_manifest
from tests.support.projects import EXAMPLES
from tests.support.store import FakeStore


def test_a_manifest_already_released_is_a_noop_that_writes_nothing(store: FakeStore) -> None:
    # Given release 1, built from the current manifest
    baseline(store)
    puts = list(store.puts)
    recorder = Recorder(store)
    # When the validator runs again (a duplicated event, the schedule)
    outcome = recorder.run()
    # Then it is a no-op: the manifest's ETag is the one the release was built from
    assert (outcome.status, outcome.detail, outcome.sequence) == ("noop", "manifest unchanged since release", 1)
    assert store.puts == puts and recorder.events == [] and recorder.rejections == []


def test_a_changed_manifest_is_released_with_the_next_sequence_and_one_event(store: FakeStore) -> None:
    # Given release 1 (sales 1.0.0, finance 1.0.0) and sales 2.0.0 promoted
    baseline(store)
    previous, _ = read_release(store)
    publish(store, "sales", "2.0.0", EXAMPLES / "marketing", promote_now=True)
    recorder = Recorder(store)
    # When the validator runs
    outcome = recorder.run()
    # Then release 2 names the current manifest, resolves only sales again, and one event announces it
    release, etag = read_release(store)
    assert outcome.status == "accepted" and outcome.sequence == 2 and outcome.changed == ["sales"]
    assert release is not None and previous is not None
    assert release.sequence == 2 and release.manifest_etag == store.etags[keys.MANIFEST_KEY]
    assert release.projects["sales"].version == "2.0.0"
    assert release.projects["finance"] == previous.projects["finance"]
    assert [(e.sequence, e.release_etag, e.changed) for e in recorder.events] == [(2, etag, ["sales"])]


def test_a_bad_manifest_is_rejected_with_its_reason_and_the_release_is_untouched(store: FakeStore) -> None:
    # Given release 1, then a manifest naming a version that was never published
    before = baseline(store)
    set_manifest(store, {"sales": "9.9.9"})
    recorder = Recorder(store)
    # When the validator runs
    outcome = recorder.run()
    # Then it is rejected: status/rejection.json says why and for which manifest, release.json is as it was
    assert outcome.status == "rejected" and outcome.detail == "sales 9.9.9: not in catalog/sales.yaml (latest: 1.0.0)"
    rejection = read_rejection(store)
    assert rejection is not None and rejection.reason == outcome.detail
    assert rejection.manifest_etag == store.etags[keys.MANIFEST_KEY]
    assert store.get(keys.RELEASE_KEY) == before
    assert recorder.rejections == [rejection] and recorder.events == []


def test_a_manifest_already_rejected_is_a_noop_that_alerts_once(store: FakeStore) -> None:
    # Given a manifest the validator rejected
    baseline(store)
    set_manifest(store, {"sales": "9.9.9"})
    recorder = Recorder(store)
    assert recorder.run().status == "rejected"
    puts = list(store.puts)
    # When it runs again on the same manifest (a redelivered event), and when the schedule looks again
    again = recorder.run()
    recheck = recorder.run(recheck_rejected=True)
    # Then both are no-ops: nothing written, no second alert
    assert (again.status, again.detail) == ("noop", "manifest already rejected")
    assert (recheck.status, recheck.detail) == ("noop", "manifest still rejected")
    assert again.errors == recheck.errors == ["sales 9.9.9: not in catalog/sales.yaml (latest: 1.0.0)"]
    assert store.puts == puts and len(recorder.rejections) == 1


@pytest.mark.parametrize("manifest_moved_on", [False, True], ids=["same-manifest", "manifest-moved-on"])
def test_a_release_written_meanwhile_makes_the_run_start_over(store: FakeStore, manifest_moved_on: bool) -> None:
    # Given release 1, sales 2.0.0 promoted, and finance 2.0.0 published
    baseline(store)
    publish(store, "sales", "2.0.0", EXAMPLES / "marketing", promote_now=True)
    publish(store, "finance", "2.0.0", EXAMPLES / "finance")
    other = Recorder(store)

    def another_run_releases_first() -> None:
        assert other.run().sequence == 2
        if manifest_moved_on:
            promote(store, "finance", "2.0.0")

    # And another run that releases (and, in one case, a promote) between this run's reads and its release write
    store.race(keys.RELEASE_KEY, another_run_releases_first)
    mine = Recorder(store)
    # When this run writes release.json (IfMatch on the release it read)
    outcome = mine.run()
    # Then the write is refused and the run starts over on what is current: the sequence only grows
    assert [k for k in store.refused if not k.startswith(keys.SHARDS_PREFIX)] == [keys.RELEASE_KEY]
    release, _ = read_release(store)
    assert release is not None and release.manifest_etag == store.etags[keys.MANIFEST_KEY]
    assert [e.sequence for e in other.events] == [2]
    if manifest_moved_on:
        assert (outcome.status, outcome.sequence, outcome.changed) == ("accepted", 3, ["finance"])
        assert release.sequence == 3 and [e.sequence for e in mine.events] == [3]
    else:
        assert (outcome.status, outcome.detail) == ("noop", "manifest unchanged since release")
        assert release.sequence == 2 and mine.events == []


def test_a_dag_id_declared_by_three_projects_is_one_problem_naming_all_three() -> None:
    projects = {"sales": ["daily", "shared"], "ops": ["shared", "ops_only"], "finance": ["shared", "daily"],
                "alone": ["alone_dag"]}
    assert duplicate_dag_ids(projects) == [
        "dag_id 'daily' is declared by more than one live project: finance, sales",
        "dag_id 'shared' is declared by more than one live project: finance, ops, sales",
    ]
