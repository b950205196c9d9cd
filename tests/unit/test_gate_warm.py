"""The warm validator (gate.validator.Live kept from run to run) decides and writes what a cold one would (one built
from the bucket alone, on a copy of it): over runs of changes, arrivals, retirements and dag_id clashes, and on the
paths where what it kept must be dropped: a release written by another run while it was validating, an older root
put back at release.json, and a release written elsewhere whose projects already share a dag_id."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path

from dagsync.core import keys, releases
from dagsync.core.documents import read_release
from dagsync.core.models import ManifestWrite, Release, ReleasedProject
from dagsync.gate.validator import Live, Outcome
from tests.support.gate import Recorder, publish_dags, put_manifest
from tests.support.projects import TEST_CHAIN, put_release
from tests.support.store import FakeStore

NOW = datetime(2026, 12, 3, tzinfo=UTC)


def _same_as_cold(warm: Recorder, store: FakeStore) -> Outcome:
    """The warm validator's outcome, after a cold one on a copy of the bucket decided the same, and with the stored
    shard table the one a table built whole would be."""
    copied = copy.deepcopy(store)
    cold = Recorder(copied).run()
    outcome = warm.run()
    assert (outcome.status, outcome.detail, outcome.errors, outcome.changed) == (
        cold.status, cold.detail, cold.errors, cold.changed)
    if outcome.status == "accepted":
        release, _ = read_release(store)
        assert release is not None
        whole = releases.compose(sequence=release.sequence, chain=TEST_CHAIN, after=dict(release.projects),
                                 manifest=ManifestWrite(etag='"m"'), now=NOW)
        stored = store.get(keys.RELEASE_KEY)
        assert stored is not None and json.loads(stored.data)["shards"] == whole.root.shards
    return outcome


def _versions_1(store: FakeStore, src: Path, **dag_ids: str) -> None:
    """Version 1 of each project named, published with its one dag_id."""
    for project, dag_id in dag_ids.items():
        publish_dags(store, src, project, "1", dag_id)

def test_a_warm_validator_that_lost_a_race_checks_against_the_release_that_won(store: FakeStore,
                                                                               tmp_path: Path) -> None:
    # Given a (x) and b (y) released by a validator that keeps running
    warm = Recorder(store)
    _versions_1(store, tmp_path, a="x", b="y", c="z", d="z")
    put_manifest(store, {"a": "1", "b": "1"})
    assert _same_as_cold(warm, store).sequence == 1
    # And, between its reads and its release write, another run releases c (z) and the manifest moves on to d (z)
    put_manifest(store, {"a": "1", "b": "1", "c": "1"})

    def another_run_releases_c_then_d_is_promoted() -> None:
        assert Recorder(store).run().sequence == 2
        put_manifest(store, {"a": "1", "b": "1", "c": "1", "d": "1"})

    store.race(keys.RELEASE_KEY, another_run_releases_c_then_d_is_promoted)
    # When it runs: refused, it starts over on release 2 (its kept release 1 knew no c)
    outcome = warm.run()
    # Then d is refused for z, which c owns in release 2, as a cold validator refuses it
    assert outcome.errors == ["dag_id 'z' is declared by more than one live project: c, d"]
    cold = Recorder(copy.deepcopy(store)).run(recheck_rejected=True)
    assert (cold.detail, cold.errors) == ("manifest still rejected", outcome.errors)
    # And once c retires, d takes z in release 3, built on release 2
    put_manifest(store, {"a": "1", "b": "1", "d": "1"})
    assert (_same_as_cold(warm, store).sequence, warm.events[-1].changed) == (3, ["c", "d"])


def test_a_warm_validator_builds_on_the_newest_release_when_an_older_root_is_put_back(store: FakeStore,
                                                                                      tmp_path: Path) -> None:
    # Given releases 1 (a) and 2 (a, b declaring y) by a validator that keeps running
    warm = Recorder(store)
    _versions_1(store, tmp_path, a="x", b="y", c="y", e="w")
    put_manifest(store, {"a": "1"})
    _same_as_cold(warm, store)
    put_manifest(store, {"a": "1", "b": "1"})
    assert _same_as_cold(warm, store).sequence == 2
    # And release 1's root put back at release.json (a replay)
    replayed = store.get(keys.release_key(1))
    assert replayed is not None
    store.put(keys.RELEASE_KEY, replayed.data)
    # When c (y) arrives with b still live: refused naming both, although release 1 knew no b
    put_manifest(store, {"a": "1", "b": "1", "c": "1"})
    assert _same_as_cold(warm, store).errors == ["dag_id 'y' is declared by more than one live project: b, c"]
    # When b retires for c: release 3 is built on release 2 (the newest), not on the replayed release 1
    put_manifest(store, {"a": "1", "c": "1"})
    outcome = _same_as_cold(warm, store)
    assert (outcome.sequence, outcome.changed) == (3, ["b", "c"])
    # And the next change is O(changed) again from the release it wrote
    put_manifest(store, {"a": "1", "c": "1", "e": "1"})
    assert (_same_as_cold(warm, store).sequence, warm.events[-1].changed) == (4, ["e"])


def test_a_release_written_with_a_shared_dag_id_is_checked_whole_until_and_after_the_clash_is_gone(
        store: FakeStore, tmp_path: Path) -> None:
    # Given release 1 written elsewhere (before rule D4) in which a and b both declare x
    def entry(project: str, *dag_ids: str) -> ReleasedProject:
        return ReleasedProject(version="1", archive_key=keys.archive_key(project, "1"), sha256="0" * 64, size=1,
                               files=1, uncompressed_size=1, dag_ids=list(dag_ids))

    put_release(store, Release(sequence=1, manifest_etag='"old"', published_at=NOW, chain=TEST_CHAIN,
                               projects={"a": entry("a", "x"), "b": entry("b", "x")}))
    warm = Recorder(store)
    publish_dags(store, tmp_path, "c", "1", "z")
    publish_dags(store, tmp_path, "d", "1", "x")
    # When c arrives: refused for the clash already live, as a check of every project would
    put_manifest(store, {"a": "1", "b": "1", "c": "1"})
    assert _same_as_cold(warm, store).errors == ["dag_id 'x' is declared by more than one live project: a, b"]
    # When b retires: released
    put_manifest(store, {"a": "1", "c": "1"})
    assert _same_as_cold(warm, store).changed == ["b", "c"]
    # Then x still belongs to a: d declaring it is refused naming a, warm as cold
    put_manifest(store, {"a": "1", "c": "1", "d": "1"})
    assert _same_as_cold(warm, store).errors == ["dag_id 'x' is declared by more than one live project: a, d"]
    # (and the release that no longer shares x is indexed by owner again: later changes are checked O(changed))
    assert warm.validator.live is not None and warm.validator.live.unique
    # And once a retires, d takes x
    put_manifest(store, {"c": "1", "d": "1"})
    assert _same_as_cold(warm, store).changed == ["a", "d"]


def test_a_warm_validator_checks_dag_ids_against_the_release_as_it_moves(store: FakeStore, tmp_path: Path) -> None:
    # Given a (dag x) and b (dag y) live, released by the validator that keeps running
    warm = Recorder(store)
    publish_dags(store, tmp_path, "a", "1", "x")
    publish_dags(store, tmp_path, "b", "1", "y")
    put_manifest(store, {"a": "1", "b": "1"})
    assert _same_as_cold(warm, store).status == "accepted"
    # When c declares x, which a owns: refused, naming both
    publish_dags(store, tmp_path, "c", "1", "x")
    put_manifest(store, {"a": "1", "b": "1", "c": "1"})
    assert _same_as_cold(warm, store).errors == ["dag_id 'x' is declared by more than one live project: a, c"]
    # When a 2 gives x up in the same manifest that brings c: released (the moved projects are checked as they are now)
    publish_dags(store, tmp_path, "a", "2", "x2")
    put_manifest(store, {"a": "2", "b": "1", "c": "1"})
    assert _same_as_cold(warm, store).changed == ["a", "c"]
    # Then x belongs to c: d declaring it is refused naming c, and a taking it back is refused too
    publish_dags(store, tmp_path, "d", "1", "x", "y")
    publish_dags(store, tmp_path, "a", "3", "x")
    put_manifest(store, {"a": "3", "b": "1", "c": "1", "d": "1"})
    assert _same_as_cold(warm, store).errors == [
        "dag_id 'x' is declared by more than one live project: a, c, d",
        "dag_id 'y' is declared by more than one live project: b, d",
    ]
    # When c and b retire, d may take x and y; a 2 stays
    put_manifest(store, {"a": "2", "d": "1"})
    assert _same_as_cold(warm, store).changed == ["b", "c", "d"]
    # And a project that retired gave its dag_ids back, so a new version of it that declares y clashes with d
    publish_dags(store, tmp_path, "b", "2", "y")
    put_manifest(store, {"a": "2", "b": "2", "d": "1"})
    assert _same_as_cold(warm, store).errors == ["dag_id 'y' is declared by more than one live project: b, d"]
    # And once a has retired, its x2 is free for e, released later
    put_manifest(store, {"d": "1"})
    assert _same_as_cold(warm, store).changed == ["a"]
    publish_dags(store, tmp_path, "e", "1", "x2")
    put_manifest(store, {"d": "1", "e": "1"})
    assert _same_as_cold(warm, store).changed == ["e"]


def test_a_warm_validator_writes_the_shards_a_cold_one_would(store: FakeStore, tmp_path: Path) -> None:
    # Given 40 projects (several share a shard), released by one validator that keeps running
    warm = Recorder(store)
    names = [f"p{i:02d}" for i in range(40)]
    for name in names:
        publish_dags(store, tmp_path, name, "1", f"{name}_dag")
    live = dict.fromkeys(names, "1")
    put_manifest(store, live)
    assert _same_as_cold(warm, store).status == "accepted"
    # When projects change, arrive and retire over several releases (each checked against a shard table built whole)
    for step in range(4):
        for name in names[step::7]:
            publish_dags(store, tmp_path, name, f"2.{step}", f"{name}_dag")
            live[name] = f"2.{step}"
        live.pop(names[step * 3 + 1], None)
        publish_dags(store, tmp_path, f"new{step}", "1", f"new{step}_dag")
        live[f"new{step}"] = "1"
        put_manifest(store, live)
        outcome = _same_as_cold(warm, store)
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
