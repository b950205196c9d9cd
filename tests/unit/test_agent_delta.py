"""The event path: a host one release behind applies the change event's delta with no metadata read; anything else
falls back to a conditional read of release.json, and nothing the signed root does not vouch for is applied."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dagsync.agent import sync as sync_module
from dagsync.agent import views
from dagsync.agent.sync import Syncer
from dagsync.core import keys, releases
from dagsync.core.models import Chain, ChangeEvent, ManifestWrite, ReleasedProject
from dagsync.gate.validator import change_event
from tests.support import signing
from tests.support.projects import TEST_CHAIN, write_release
from tests.support.store import FakeStore

# Enough projects that they spread over several shards: a change touches one, the rest stay as they are.
BASE = {f"p{i:02d}": ("1", {"dag.py": f"x = {i}\n"}) for i in range(40)}


class Releaser:
    """Writes releases the way the validator does (only changed shards, release.json IfMatch the previous root),
    and returns each one's change event."""

    def __init__(self, store: FakeStore, src: Path) -> None:
        self.store, self.src = store, src
        first = write_release(store, src, 1, BASE)
        stored = releases.read_root(store, signing.VERIFIER)
        assert stored is not None
        self.root, self.etag, self.projects = stored.root, stored.etag, dict(first.projects)

    def next(self, changes: dict[str, tuple[str, str] | None]) -> ChangeEvent:
        """changes: project -> (version, dag.py text), or None to retire it."""
        bumped = {p: (v, {"dag.py": text}) for p, c in changes.items() if c is not None for v, text in [c]}
        staged = write_release(self.store, self.src, 1, bumped, write=False).projects if bumped else {}
        after = {p: e for p, e in {**self.projects, **staged}.items() if changes.get(p, ()) is not None}
        made = releases.compose(sequence=self.root.sequence + 1, chain=TEST_CHAIN, before=self.projects, after=after,
                                table=self.root.shards, manifest=ManifestWrite(etag='"m"'), now=datetime.now(UTC))
        data, self.etag = releases.write(self.store, made, signing.SIGNER, self.etag)
        self.root, self.projects = made.root, after
        return change_event(data, self.etag, after, dict(made.root.changes))


@pytest.fixture
def releaser(store: FakeStore, tmp_path: Path) -> Releaser:
    return Releaser(store, tmp_path / "src")


@pytest.fixture
def syncer(releaser: Releaser, make_syncer: Callable[..., Syncer]) -> Syncer:
    """A host holding release 1."""
    made = make_syncer()
    assert made.sync(full=True).outcome == "success"
    return made


def link(dags: Path, project: str) -> str:
    return str((dags / project).readlink())


def deltas(syncer: Syncer, result: str) -> float:
    return syncer.metrics.registry.get_sample_value("dagsync_agent_deltas_total", {"result": result}) or 0.0


def metadata_reads(store: FakeStore) -> list[str]:
    return [k for k in store.gets if not k.startswith("projects/")]


def test_a_host_one_release_behind_applies_the_delta_with_no_metadata_read(
        store: FakeStore, tmp_path: Path, releaser: Releaser, syncer: Syncer, dags: Path) -> None:
    event = releaser.next({"p03": ("2", "x = 'two'\n"), "p07": None})
    store.gets.clear()
    result = syncer.sync(full=False, events=[event])
    assert result.outcome == "success" and result.sequence == 2
    assert metadata_reads(store) == []
    assert (dags / "p03" / "dag.py").read_text() == "x = 'two'\n"
    assert not (dags / "p07").exists() and (dags / "p08").exists()
    assert deltas(syncer, "applied") == 1 and syncer.state.sequence == 2
    store.gets.clear()
    assert syncer.sync(full=False).outcome == "noop"  # the event's ETag is release.json's: a 304
    assert metadata_reads(store) == [keys.RELEASE_KEY]


def test_a_burst_of_events_is_applied_one_delta_after_the_other(
        store: FakeStore, tmp_path: Path, releaser: Releaser, syncer: Syncer, dags: Path) -> None:
    first = releaser.next({"p01": ("2", "a\n")})
    second = releaser.next({"p01": ("3", "b\n"), "p02": ("2", "c\n")})
    store.gets.clear()
    assert syncer.sync(full=False, events=[second, first]).sequence == 3
    assert metadata_reads(store) == [] and deltas(syncer, "applied") == 2
    assert (dags / "p01" / "dag.py").read_text() == "b\n" and (dags / "p02" / "dag.py").read_text() == "c\n"


def test_a_host_two_releases_behind_falls_back_to_the_conditional_read(
        store: FakeStore, tmp_path: Path, releaser: Releaser, syncer: Syncer, dags: Path) -> None:
    releaser.next({"p01": ("2", "a\n")})  # its event never reached this host
    event = releaser.next({"p02": ("2", "c\n")})
    store.gets.clear()
    assert syncer.sync(full=False, events=[event]).sequence == 3
    assert deltas(syncer, "fallback") == 1 and deltas(syncer, "applied") == 0
    assert metadata_reads(store)[0] == keys.RELEASE_KEY
    assert (dags / "p01" / "dag.py").read_text() == "a\n" and (dags / "p02" / "dag.py").read_text() == "c\n"


def test_a_lost_event_is_healed_by_the_full_reconcile(
        store: FakeStore, tmp_path: Path, releaser: Releaser, syncer: Syncer, dags: Path) -> None:
    releaser.next({"p05": ("2", "healed\n")})
    assert syncer.sync(full=True).outcome == "success"
    assert (dags / "p05" / "dag.py").read_text() == "healed\n" and syncer.state.sequence == 2


def test_an_event_for_a_release_that_is_not_the_next_one_falls_back(
        store: FakeStore, tmp_path: Path, releaser: Releaser, syncer: Syncer, dags: Path) -> None:
    event = releaser.next({"p05": ("2", "new\n")})
    syncer.sync(full=False, events=[event])
    store.gets.clear()
    # The same event again (a redelivery), and a stale one: neither goes back, neither reads anything.
    assert syncer.sync(full=False, events=[event]).sequence == 2
    stale = event.model_copy(update={"root": {**event.root, "sequence": 1}})
    assert syncer.sync(full=False, events=[stale]).sequence == 2
    assert (dags / "p05" / "dag.py").read_text() == "new\n"
    # One that skips a release: release.json is read instead.
    skip = releaser.next({"p06": ("2", "six\n")})
    skip = skip.model_copy(update={"root": {**skip.root, "sequence": 9}})
    assert syncer.sync(full=False, events=[skip]).sequence == 3
    assert deltas(syncer, "fallback") == 1 and (dags / "p06" / "dag.py").read_text() == "six\n"


def test_an_event_with_no_entries_fetches_only_the_changed_shards(
        store: FakeStore, tmp_path: Path, releaser: Releaser, syncer: Syncer, dags: Path) -> None:
    event = releaser.next({"p09": ("2", "nine\n")})
    store.gets.clear()
    syncer.sync(full=False, events=[ChangeEvent(release_etag=event.release_etag, root=event.root)])
    # The root comes with the event; the one shard that changed is read, nothing else.
    assert metadata_reads(store) == [keys.shard_key(releaser.root.shards[releases.shard_of("p09")])]
    assert (dags / "p09" / "dag.py").read_text() == "nine\n"


def test_a_tampered_delta_is_refused_and_the_signed_release_applied(
        store: FakeStore, tmp_path: Path, releaser: Releaser, syncer: Syncer, dags: Path) -> None:
    evil = write_release(store, tmp_path / "evil", 1, {"p04": ("2", {"dag.py": "evil\n"})}, write=False)
    event = releaser.next({"p04": ("2", "good\n")})
    assert event.entries is not None
    forged = event.model_copy(update={"entries": {"p04": evil.projects["p04"].model_dump(mode="json")}})
    result = syncer.sync(full=False, events=[forged])
    assert deltas(syncer, "refused") == 1
    assert syncer.metrics.registry.get_sample_value("dagsync_agent_releases_refused_total",
                                                    {"reason": "bad_delta"}) == 1
    assert result.sequence == 2 and (dags / "p04" / "dag.py").read_text() == "good\n"


def test_a_delta_naming_a_project_the_root_did_not_change_is_refused(
        store: FakeStore, tmp_path: Path, releaser: Releaser, syncer: Syncer, dags: Path) -> None:
    before = link(dags, "p11")
    event = releaser.next({"p10": ("2", "ten\n")})
    assert event.entries is not None
    extra = ReleasedProject.model_validate(event.entries["p10"]).model_dump(mode="json")
    forged = event.model_copy(update={"entries": {**event.entries, "p11": extra}})
    syncer.sync(full=False, events=[forged])
    assert deltas(syncer, "refused") == 1 and link(dags, "p11") == before
    assert (dags / "p10" / "dag.py").read_text() == "ten\n"


def test_an_event_whose_root_is_not_signed_by_a_trusted_key_is_refused(
        store: FakeStore, tmp_path: Path, releaser: Releaser, syncer: Syncer, dags: Path) -> None:
    event = releaser.next({"p12": ("2", "twelve\n")})
    altered = json.loads(json.dumps(event.root))
    altered["changes"] = {}
    syncer.sync(full=False, events=[event.model_copy(update={"root": altered})])
    assert syncer.metrics.registry.get_sample_value("dagsync_agent_releases_refused_total",
                                                    {"reason": "bad_signature"}) == 1
    assert (dags / "p12" / "dag.py").read_text() == "twelve\n"  # from release.json, signed


def test_the_deep_check_reads_release_json_whatever_etag_an_event_claimed(
        releaser: Releaser, make_syncer: Callable[..., Syncer], dags: Path) -> None:
    syncer = make_syncer(digest_every=2)
    syncer.sync(full=True)  # cycle 0: deep
    event = releaser.next({"p13": ("2", "a\n")})
    newer = releaser.next({"p13": ("3", "b\n")})
    # An event of release 2 claiming release 3's ETag: conditional reads would answer 304 on release 2.
    syncer.sync(full=False, events=[event.model_copy(update={"release_etag": newer.release_etag})])
    assert syncer.sync(full=True).sequence == 2  # cycle 1: stat, conditional
    assert syncer.sync(full=True).sequence == 3  # cycle 2: deep, unconditional
    assert (dags / "p13" / "dag.py").read_text() == "b\n"


class Spy:
    """Counts the calls of a function, and what they were about, and calls it."""

    def __init__(self, real: Callable[..., object]) -> None:
        self.real, self.calls = real, []  # type: ignore[var-annotated]

    def __call__(self, *args: object, **kwargs: object) -> object:
        self.calls.append(args)
        return self.real(*args, **kwargs)


def spy(monkeypatch: pytest.MonkeyPatch, target: object, name: str) -> Spy:
    made = Spy(getattr(target, name))
    monkeypatch.setattr(target, name, made)
    return made


def looks(syncer: Syncer) -> dict[str, float]:
    return {look: syncer.metrics.registry.get_sample_value("dagsync_agent_event_looks_total", {"look": look}) or 0.0
            for look in ("changed", "scan")}


def release_trees(releaser: Releaser) -> dict[str, str]:
    return {p: e.tree_name for p, e in releaser.projects.items()}


def assert_volume_holds(syncer: Syncer, releaser: Releaser, dags: Path) -> None:
    """Exactly the release: every link, the current view, the state, and a full scan finds nothing to do."""
    want = release_trees(releaser)
    current = views.current_view(syncer.volume)
    assert current is not None and current == (releaser.root.sequence, want)
    assert {p: syncer.volume.linked_tree(p) for p in syncer.volume.entries()} == want
    assert syncer.state.links == want and syncer.state.sequence == releaser.root.sequence
    syncer._quiet_mark = None
    assert syncer.sync(full=True).outcome == "noop"


def test_an_event_on_a_settled_volume_looks_only_at_the_projects_it_changed(
        monkeypatch: pytest.MonkeyPatch, releaser: Releaser, make_syncer: Callable[..., Syncer], dags: Path) -> None:
    # Given a host that keeps one old view, settled on release 1 and then on 2 (from its event)
    syncer = make_syncer(keep_views=1)
    syncer.sync(full=True)
    syncer.sync(full=False, events=[releaser.next({"p01": ("2", "one\n")})])
    scans = spy(monkeypatch, sync_module, "scan")
    repairs = spy(monkeypatch, views, "repair_links")
    looked = spy(monkeypatch, syncer.volume, "linked_tree")
    # When release 3 changes p03 and retires p07
    result = syncer.sync(full=False, events=[releaser.next({"p03": ("2", "x = 'two'\n"), "p07": None})])
    # Then only those two were looked at (no scan), the old view was recycled by what changed (no readlink of
    # every link), and the volume holds release 3 exactly
    assert result.outcome == "success" and scans.calls == [] and repairs.calls == []
    assert sorted(call[0] for call in looked.calls) == ["p03", "p07"] and looks(syncer) == {"changed": 2, "scan": 0}
    assert (dags / "p03" / "dag.py").read_text() == "x = 'two'\n" and not (dags / "p07").exists()
    assert_volume_holds(syncer, releaser, dags)


def test_drift_since_the_last_cycle_makes_the_event_cycle_scan_everything(
        monkeypatch: pytest.MonkeyPatch, releaser: Releaser, syncer: Syncer, dags: Path) -> None:
    syncer.sync(full=False, events=[releaser.next({"p01": ("2", "one\n")})])
    (dags / "p20").unlink()  # someone removes a link the change does not touch
    scans = spy(monkeypatch, sync_module, "scan")
    syncer.sync(full=False, events=[releaser.next({"p02": ("2", "two\n")})])
    assert len(scans.calls) == 1 and syncer.volume.linked_tree("p20") is not None
    assert looks(syncer) == {"changed": 1, "scan": 1}
    assert_volume_holds(syncer, releaser, dags)


def test_a_changed_project_not_as_recorded_makes_the_event_cycle_scan(
        monkeypatch: pytest.MonkeyPatch, releaser: Releaser, syncer: Syncer, dags: Path) -> None:
    # A tree with no record in the changed project's store folder, put there without the watch seeing it
    syncer.sync(full=False, events=[releaser.next({"p01": ("2", "one\n")})])
    (syncer.volume.store / "p04" / "9-unrecorded").mkdir()
    syncer.watch.drain()
    assert syncer._settled is not None
    syncer._settled = (syncer._settled[0], syncer.watch.seen, syncer.watch.misses)
    scans = spy(monkeypatch, sync_module, "scan")
    syncer.sync(full=False, events=[releaser.next({"p04": ("2", "four\n")})])
    assert len(scans.calls) == 1 and "9-unrecorded" in syncer.state.trees["p04"]  # adopted by the scan
    assert (dags / "p04" / "dag.py").read_text() == "four\n"


def test_a_spare_view_changed_since_it_was_written_is_read_whole_when_recycled(
        monkeypatch: pytest.MonkeyPatch, releaser: Releaser, make_syncer: Callable[..., Syncer], dags: Path) -> None:
    syncer = make_syncer(keep_views=1)
    syncer.sync(full=True)
    syncer.sync(full=False, events=[releaser.next({"p01": ("2", "one\n")})])
    # The spare view (release 1) gets a wrong link for a project no release changed
    spare = views.view_path(syncer.volume, 1)
    os.unlink(spare / "p30")
    os.symlink(views.link_target("p30", "0-wrong"), spare / "p30")
    repairs = spy(monkeypatch, views, "repair_links")
    syncer.sync(full=False, events=[releaser.next({"p02": ("2", "two\n")})])
    assert len(repairs.calls) == 1  # the log did not vouch for it: every link read
    assert_volume_holds(syncer, releaser, dags)


def test_without_a_working_watch_every_event_cycle_scans(
        monkeypatch: pytest.MonkeyPatch, releaser: Releaser, syncer: Syncer, dags: Path) -> None:
    syncer.watch.close()
    scans = spy(monkeypatch, sync_module, "scan")
    syncer.sync(full=False, events=[releaser.next({"p01": ("2", "one\n")})])
    syncer.sync(full=False, events=[releaser.next({"p02": ("2", "two\n")})])
    assert len(scans.calls) == 2
    assert_volume_holds(syncer, releaser, dags)


def test_a_host_two_releases_behind_reads_release_json_and_still_looks_only_at_what_changed(
        monkeypatch: pytest.MonkeyPatch, releaser: Releaser, make_syncer: Callable[..., Syncer], dags: Path) -> None:
    syncer = make_syncer(keep_views=1)
    syncer.sync(full=True)
    syncer.sync(full=False, events=[releaser.next({"p01": ("2", "one\n")})])
    releaser.next({"p05": ("2", "five\n")})  # its event never reached this host
    event = releaser.next({"p06": None, "p07": ("2", "seven\n")})
    scans = spy(monkeypatch, sync_module, "scan")
    looked = spy(monkeypatch, syncer.volume, "linked_tree")
    assert syncer.sync(full=False, events=[event]).sequence == 4
    assert deltas(syncer, "fallback") == 1 and scans.calls == []
    assert sorted(call[0] for call in looked.calls) == ["p05", "p06", "p07"]
    assert_volume_holds(syncer, releaser, dags)


def test_the_unowned_entries_found_by_the_last_scan_stand_after_an_event_cycle_that_did_not_look(
        releaser: Releaser, make_syncer: Callable[..., Syncer], dags: Path) -> None:
    syncer = make_syncer()
    (dags / "notes.txt").write_text("not dagsync's\n")
    syncer.sync(full=True)
    syncer.sync(full=False, events=[releaser.next({"p01": ("2", "one\n")})])
    assert looks(syncer)["changed"] == 1
    assert syncer.metrics.registry.get_sample_value("dagsync_agent_unowned_entries") == 1


def test_a_folder_the_watch_could_not_watch_keeps_event_cycles_on_the_scan(
        monkeypatch: pytest.MonkeyPatch, releaser: Releaser, make_syncer: Callable[..., Syncer], dags: Path) -> None:
    # fs.inotify.max_user_watches reached when the scan came to the DAG folder: drift there sends no event
    syncer = make_syncer()
    _cannot_watch(monkeypatch, syncer, os.fspath(dags))
    syncer.sync(full=True)
    syncer.sync(full=False, events=[releaser.next({"p01": ("2", "one\n")})])
    (dags / "p20").unlink()
    syncer.sync(full=False, events=[releaser.next({"p02": ("2", "two\n")})])
    assert looks(syncer) == {"changed": 0, "scan": 2} and syncer.volume.linked_tree("p20") is not None


def test_a_new_project_is_watched_from_its_fetch_on(releaser: Releaser, syncer: Syncer, dags: Path) -> None:
    syncer.sync(full=False, events=[releaser.next({"new": ("1", "new\n")})])  # fetched into a new store folder
    tree = syncer.state.links["new"]
    os.rename(syncer.volume.tree_path("new", tree), syncer.volume.store / "new" / ".gone")  # which the watch sees
    syncer.sync(full=False, events=[releaser.next({"p02": ("2", "two\n")})])
    assert looks(syncer) == {"changed": 1, "scan": 1}
    assert (dags / "new" / "dag.py").read_text() == "new\n"  # fetched again by the scan
    assert_volume_holds(syncer, releaser, dags)


def test_releases_of_an_older_chain_seen_and_refused_never_teach_the_view_log(
        store: FakeStore, releaser: Releaser, make_syncer: Callable[..., Syncer], dags: Path) -> None:
    # Given a host on release 5 of its chain, keeping three old views
    syncer = make_syncer(keep_views=3)
    syncer.sync(full=True)
    for project in ("p01", "p02", "p04", "p05"):
        syncer.sync(full=False, events=[releaser.next({project: ("2", f"{project}\n")})])
    ours = store.objects[keys.RELEASE_KEY]
    # When release.json briefly shows releases 3 and 4 of an older chain (a stale validator, a restored backup),
    # 4 changing p30: both refused
    older = Chain(id="00d0" * 8, created_at=datetime(2025, 1, 1, tzinfo=UTC))
    base = dict(releaser.projects)
    three = releases.compose(sequence=3, chain=older, after=base, manifest=ManifestWrite(etag='"m"'),
                             now=datetime.now(UTC))
    releases.write(store, three, signing.SIGNER, store.etags[keys.RELEASE_KEY])
    assert syncer.sync(full=True).outcome == "noop"
    nine = base["p30"].model_copy(update={"version": "9", "archive_key": keys.archive_key("p30", "9")})
    bumped = {**base, "p30": nine}
    four = releases.compose(sequence=4, chain=older, before=base, after=bumped, table=three.root.shards,
                            manifest=ManifestWrite(etag='"m"'), now=datetime.now(UTC))
    releases.write(store, four, signing.SIGNER, store.etags[keys.RELEASE_KEY])
    assert syncer.sync(full=True).outcome == "noop"
    store.put(keys.RELEASE_KEY, ours)  # put back
    syncer.sync(full=True)
    # Then release 6 of the host's chain (view 2 recycled into it) holds exactly release 6
    syncer.sync(full=False, events=[releaser.next({"p06": ("2", "p06\n")})])
    assert syncer.state.sequence == 6
    assert_volume_holds(syncer, releaser, dags)


def test_a_new_store_folder_the_watch_could_not_add_keeps_event_cycles_on_the_scan(
        monkeypatch: pytest.MonkeyPatch, releaser: Releaser, make_syncer: Callable[..., Syncer], dags: Path) -> None:
    # fs.inotify.max_user_watches reached when a new project's store folder is made: changes there send no event
    syncer = make_syncer()
    _cannot_watch(monkeypatch, syncer, os.fspath(syncer.volume.store / "new"))
    syncer.sync(full=True)
    syncer.sync(full=False, events=[releaser.next({"new": ("1", "new\n")})])
    tree = syncer.state.links["new"]
    os.rename(syncer.volume.tree_path("new", tree), syncer.volume.store / "new" / ".gone")  # unseen by the watch
    syncer.sync(full=False, events=[releaser.next({"p02": ("2", "two\n")})])
    assert looks(syncer) == {"changed": 1, "scan": 1}  # the event of p02 went to the scan
    assert (dags / "new" / "dag.py").read_text() == "new\n"  # fetched again by the scan
    assert_volume_holds(syncer, releaser, dags)


def _cannot_watch(monkeypatch: pytest.MonkeyPatch, syncer: Syncer, folder: str) -> None:
    """inotify_add_watch fails for `folder` (fs.inotify.max_user_watches reached), counted as the watch counts it."""
    real = syncer.watch._add

    def add(path: str) -> int:
        if path == folder:
            syncer.watch.misses += 1
            return -1
        return real(path)

    monkeypatch.setattr(syncer.watch, "_add", add)
