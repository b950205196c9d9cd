"""The validator's decisions against the fake store: noop, accepted (sequence + 1, one event), rejected (reason
recorded, release untouched), already rejected, and starting over when release.json changed under it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dagsync.core import keys, releases
from dagsync.core.dagcheck import duplicate_dag_ids
from dagsync.core.documents import YAML, read_rejection, read_release
from dagsync.core.models import Manifest, ManifestWrite, ReleasedProject
from dagsync.core.serde import dump_yaml
from dagsync.gate.validator import Live, Outcome
from dagsync.publish.publisher import promote, publish
from tests.support.gate import Recorder, baseline, set_manifest
from tests.support.projects import EXAMPLES, TEST_CHAIN, dag
from tests.support.store import FakeStore

NOW = datetime(2026, 12, 3, tzinfo=UTC)


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


def _version(store: FakeStore, src: Path, project: str, version: str, *dag_ids: str) -> None:
    """`project` `version` published (not promoted), one DAG file per dag_id."""
    folder = src / project / version
    folder.mkdir(parents=True)
    for dag_id in dag_ids:
        (folder / f"{dag_id}.py").write_bytes(dag(dag_id))
    publish(store, project, version, folder)


def _manifest(store: FakeStore, projects: dict[str, str]) -> None:
    store.put(keys.MANIFEST_KEY, dump_yaml(Manifest(projects=projects)), content_type=YAML)


def _decide(warm: Recorder, store: FakeStore) -> Outcome:
    """The warm validator's outcome, after checking that a cold one (built from the bucket alone) decides the same:
    the same errors for a rejected manifest, the same shards for a released one."""
    outcome = warm.run()
    if outcome.status == "rejected":
        cold = Recorder(store).run(recheck_rejected=True)
        assert (cold.status, cold.detail, cold.errors) == ("noop", "manifest still rejected", outcome.errors)
    else:
        release, _ = read_release(store)
        assert release is not None
        whole = releases.compose(sequence=release.sequence, chain=TEST_CHAIN, after=dict(release.projects),
                                 manifest=ManifestWrite(etag='"m"'), now=NOW)
        stored = store.get(keys.RELEASE_KEY)
        assert stored is not None and json.loads(stored.data)["shards"] == whole.root.shards
    return outcome


def test_a_warm_validator_checks_dag_ids_against_the_release_as_it_moves(store: FakeStore, tmp_path: Path) -> None:
    # Given a (dag x) and b (dag y) live, released by the validator that keeps running
    warm = Recorder(store)
    _version(store, tmp_path, "a", "1", "x")
    _version(store, tmp_path, "b", "1", "y")
    _manifest(store, {"a": "1", "b": "1"})
    assert _decide(warm, store).status == "accepted"
    # When c declares x, which a owns: refused, naming both
    _version(store, tmp_path, "c", "1", "x")
    _manifest(store, {"a": "1", "b": "1", "c": "1"})
    assert _decide(warm, store).errors == ["dag_id 'x' is declared by more than one live project: a, c"]
    # When a 2 gives x up in the same manifest that brings c: released (the moved projects are checked as they are now)
    _version(store, tmp_path, "a", "2", "x2")
    _manifest(store, {"a": "2", "b": "1", "c": "1"})
    assert _decide(warm, store).changed == ["a", "c"]
    # Then x belongs to c: d declaring it is refused naming c, and a taking it back is refused too
    _version(store, tmp_path, "d", "1", "x", "y")
    _version(store, tmp_path, "a", "3", "x")
    _manifest(store, {"a": "3", "b": "1", "c": "1", "d": "1"})
    assert _decide(warm, store).errors == [
        "dag_id 'x' is declared by more than one live project: a, c, d",
        "dag_id 'y' is declared by more than one live project: b, d",
    ]
    # When c and b retire, d may take x and y; a 2 stays
    _manifest(store, {"a": "2", "d": "1"})
    assert _decide(warm, store).changed == ["b", "c", "d"]
    # And a project that retired gave its dag_ids back, so a new version of it that declares y clashes with d
    _version(store, tmp_path, "b", "2", "y")
    _manifest(store, {"a": "2", "b": "2", "d": "1"})
    assert _decide(warm, store).errors == ["dag_id 'y' is declared by more than one live project: b, d"]
    # And once a has retired, its x2 is free for e, released later
    _manifest(store, {"d": "1"})
    assert _decide(warm, store).changed == ["a"]
    _version(store, tmp_path, "e", "1", "x2")
    _manifest(store, {"d": "1", "e": "1"})
    assert _decide(warm, store).changed == ["e"]


def test_a_warm_validator_writes_the_shards_a_cold_one_would(store: FakeStore, tmp_path: Path) -> None:
    # Given 40 projects (several share a shard), released by one validator that keeps running
    warm = Recorder(store)
    names = [f"p{i:02d}" for i in range(40)]
    for name in names:
        _version(store, tmp_path, name, "1", f"{name}_dag")
    live = dict.fromkeys(names, "1")
    _manifest(store, live)
    assert _decide(warm, store).status == "accepted"
    # When projects change, arrive and retire over several releases (each checked against a shard table built whole)
    for step in range(4):
        for name in names[step::7]:
            _version(store, tmp_path, name, f"2.{step}", f"{name}_dag")
            live[name] = f"2.{step}"
        live.pop(names[step * 3 + 1], None)
        _version(store, tmp_path, f"new{step}", "1", f"new{step}_dag")
        live[f"new{step}"] = "1"
        _manifest(store, live)
        outcome = _decide(warm, store)
        # Then each release names exactly the manifest's versions
        release, _ = read_release(store)
        assert outcome.status == "accepted" and release is not None
        assert {p: e.version for p, e in release.projects.items()} == live


def test_a_release_whose_projects_already_share_a_dag_id_is_checked_whole() -> None:
    # Given a live release in which a and b both declare x (written before the rule, or by hand)
    def entry(*dag_ids: str) -> ReleasedProject:
        return ReleasedProject(version="1", archive_key="k", sha256="0" * 64, size=1, files=1, uncompressed_size=1,
                               dag_ids=list(dag_ids))

    projects = {"a": entry("x"), "b": entry("x"), "c": entry("z")}
    live = Live({}, projects)
    # Then a change elsewhere still reports the clash, as a check of every project would
    assert not live.unique
    assert live.clashes({**projects, "c": entry("w")}, {"c"}) == [
        "dag_id 'x' is declared by more than one live project: a, b"]
