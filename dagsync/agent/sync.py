"""One sync cycle: read release.json (conditionally), scan, plan, apply, record, report.

A cycle never raises: every failure becomes an `error` outcome that leaves the volume as it was.
A missing, unreadable or invalid release.json changes nothing on disk."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from dagsync.core import delta, keys, releases, serde
from dagsync.core.archive import write_atomic
from dagsync.core.documents import JSON
from dagsync.core.models import ChangeEvent, HostStatus, ReleaseRoot, utcnow
from dagsync.core.store import NotModified, ObjectStore

from . import AGENT_VERSION, logs, views
from .config import AgentConfig
from .executor import ApplyResult, Executor
from .fetch import describe
from .metrics import Metrics
from .planner import LocalView, Plan, UnknownProject, plan
from .reader import VolumeReader
from .recovery import recover
from .retention import Retention
from .scan import Check, ScanResult, scan
from .state import AgentState, dump_state
from .volume import Volume
from .watch import Watch

Outcome = Literal["success", "error", "noop"]


class ReleaseUnavailable(RuntimeError):
    """release.json is missing or invalid: keep the last good state."""


def _default(setting: str) -> Any:
    return AgentConfig.model_fields[setting].default


@dataclass(frozen=True)
class Settings:
    host: str
    bucket: str = ""  # where releases come from: a chain is followed only within the bucket it came from
    keep_versions: int = _default("keep_versions")
    keep_views: int = _default("keep_views")
    retention_grace: float = _default("retention_grace")
    digest_every: int = _default("digest_every")
    write_status: bool = True


@dataclass
class SyncResult:
    outcome: Outcome
    full: bool
    error: str | None = None
    sequence: int | None = None
    applied: ApplyResult | None = None


class Syncer:
    def __init__(
        self, store: ObjectStore, volume: Volume, settings: Settings, metrics: Metrics, stop: threading.Event,
        verifier: releases.Verifier,
    ) -> None:
        self.store = store
        self.verifier = verifier  # nothing is applied that it did not accept (dagsync.agent.trust)
        self.shards = releases.HeldShards()  # every entry of the release, as much of it as a host reads
        self.volume = volume
        self.settings = settings
        self.metrics = metrics
        self.stop = stop
        self.executor = Executor(store, volume, metrics, stop, keep_views=settings.keep_views)
        self.retention = Retention(volume, self.executor, settings.keep_versions, settings.retention_grace,
                                   keep_views=settings.keep_views)
        self.watch = Watch()  # what changed on the volume since the last look (inotify)
        self.reader = VolumeReader(volume, self.watch)
        # watch.seen right after the last scan that found nothing to do and watched everything: while it holds, a
        # full reconcile has nothing to look at on disk (see _quiet)
        self._quiet_mark: int | None = None
        self.state: AgentState = recover(volume).state
        self._saved = _fingerprint(dump_state(self.state))  # of the state last written (not the text: memory)
        self.release: releases.HeldRelease | None = None
        self.root: ReleaseRoot | None = None  # the root of `release`: what a change event's delta builds on
        self.etag: str | None = None
        self.from_event = False  # `release` was built from a change event, not read from release.json
        # the projects that changed since the release held before this cycle's read (from the events followed, or
        # from the shards of release.json's root; None: not known), and that release's sequence
        self._changed: set[str] | None = None
        self._followed_from = 0
        # (sequence, watch.seen, watch.misses) when the last cycle left the volume holding that release exactly, its
        # view current: while the watch has seen nothing since, an event cycle reads only what changed (_scan_changed)
        self._settled: tuple[int, int, int] | None = None
        self.full_cycles = 0
        self.failures = 0
        self.last_error: str | None = None
        self._last_status: tuple[object, ...] | None = None
        self._unowned: list[str] = []
        self._gauges()

    @property
    def serving(self) -> bool:
        """The volume holds live projects (from this process or, after a restart, from the last one)."""
        return bool(self.state.links)

    def sync(self, *, full: bool, only: Collection[str] | None = None,
             events: Sequence[ChangeEvent] = ()) -> SyncResult:
        started = time.monotonic()
        try:
            result = self._sync(full, only, events)
        except Exception as exc:  # S3 down, bad release.json, disk trouble: count it, keep the last state
            result = SyncResult("error", full, error=_describe(exc))
        self.metrics.sync_duration.observe(time.monotonic() - started)
        self.metrics.syncs.labels(result.outcome).inc()
        self.failures = self.failures + 1 if result.outcome == "error" else 0
        self.metrics.consecutive_failures.set(self.failures)
        self.last_error = result.error
        if result.outcome == "error":
            logs.error("sync failed", full=full, error=result.error, consecutive_failures=self.failures)
        elif result.outcome == "success":
            logs.info("sync applied", full=full, sequence=result.sequence, projects=len(self.state.links))
        self._report()
        return result

    def fetch_release(self, events: Sequence[ChangeEvent] = ()) -> tuple[releases.HeldRelease, bool]:
        """The current release and whether it changed since the last read. From the change events when they lead,
        one after the other, from the release held to the newest of them (no metadata read at all); otherwise a
        conditional read of release.json (a 304 costs nothing; then only the shards whose digest changed are
        fetched). A full reconcile that runs the deep check reads release.json unconditionally, so a wrong ETag
        from an event cannot hide a newer release for longer than that."""
        self._changed, self._followed_from = set(), self.root.sequence if self.root else 0
        self.from_event = bool(events) and self._follow(events)
        if self.from_event:
            assert self.release is not None
            return self.release, True
        held, self._changed = self.root, None  # what a partial follow reached: the read builds on it
        self._followed_from = held.sequence if held else 0
        try:
            stored = releases.read_root(self.store, self.verifier, if_none_match=self.etag if self.release else None)
            if stored is None:
                raise ReleaseUnavailable(f"{keys.RELEASE_KEY} not found in the bucket; nothing changed on disk")
            projects = releases.load_shards(self.store, stored.root, self.shards)
        except NotModified:
            assert self.release is not None
            return self.release, False
        except releases.UntrustedRelease as exc:  # forged or tampered: refused, counted, and the host keeps its DAGs
            self._refused(exc.reason, str(exc))
            raise ReleaseUnavailable(f"{exc}; nothing changed on disk") from None
        except serde.DocumentError as exc:
            raise ReleaseUnavailable(f"{exc}; nothing changed on disk") from None
        if held is not None and stored.root.sequence >= held.sequence:
            self._changed = self._changes(held, stored.root)
        return self._hold(stored.root, projects, stored.etag), True

    def _hold(self, root: ReleaseRoot, projects: dict[str, releases.HeldEntry],
              etag: str | None) -> releases.HeldRelease:
        """Keep a verified release as the one held. Its root is kept without `changes`, which the agent never reads
        (a delta builds on the held root's sequence, chain and shards, and checks the next root's own changes) and
        which list every project in the first release of a chain: 10,000 names and versions held for nothing."""
        self.shards.keep(root.shards.values())
        root = root.model_copy(update={"changes": {}})
        self.release = releases.HeldRelease(root.sequence, root.chain, root.published_at, projects)
        self.root, self.etag = root, etag
        return self.release

    def _follow(self, events: Sequence[ChangeEvent]) -> bool:
        """Apply the events' deltas in order onto the release held; True when that reached the newest event. An
        event that is not the next release, or whose delta the signed root does not vouch for, stops it (False:
        read release.json instead); the releases reached up to then are kept, as they are signed and newer."""
        newest = max(e.sequence for e in events)
        for event in sorted(events, key=lambda e: e.sequence):
            if self.root is None or event.sequence <= self.root.sequence:
                continue
            try:
                root = delta.next_root(event, self.root, self.verifier)
                if root is None:
                    self.metrics.deltas.labels("fallback").inc()
                    return False
                delta.rebuild(root, self.root, event, self.shards)
                projects = releases.load_shards(self.store, root, self.shards)
            except releases.UntrustedRelease as exc:
                self.metrics.deltas.labels("refused").inc()
                self._refused(exc.reason, str(exc), sequence=event.sequence)
                return False
            except serde.DocumentError as exc:
                self.metrics.deltas.labels("refused").inc()
                self._refused(delta.BAD_DELTA, str(exc), sequence=event.sequence)
                return False
            self.metrics.deltas.labels("applied").inc()
            names = self._changes(self.root, root)
            self._changed = None if names is None or self._changed is None else self._changed | names
            self._hold(root, projects, event.release_etag)
        return self.root is not None and self.root.sequence >= newest

    def _changes(self, held: ReleaseRoot, root: ReleaseRoot) -> set[str] | None:
        """The projects whose tree differs from `held` to the newer `root`, told to the view log when `root` is the
        very next release; None when not known. Only within the chain this host applies (a refused release of
        another chain may be the one held). Called before _hold drops the held root's shards."""
        if not held.chain == root.chain == self.state.chain:
            return None
        names = releases.changed_projects(held, root, self.shards)
        if names is not None and root.sequence == held.sequence + 1:
            self.executor.view_log.changed(root.sequence, names)
        return names

    def _check_newest(self, release: releases.HeldRelease) -> None:
        """Newer than anything this host applied, but is it the newest? An older release put back at release.json
        (even one correctly signed) is refused when the history holds a later one: this host, fresh or lagging,
        has nothing of its own to compare it with."""
        try:
            releases.check_newest(self.store, release.sequence)
        except releases.UntrustedRelease as exc:
            self.release = self.etag = None  # not a release to keep: the next cycle reads release.json again
            self._refused(exc.reason, str(exc))
            raise ReleaseUnavailable(f"{exc}; nothing changed on disk") from None

    def _refused(self, reason: str, error: str, **kv: object) -> None:
        self.metrics.releases_refused.labels(reason).inc()
        logs.warning("release refused", reason=reason, error=error, **kv)

    def _same_chain(self, release: releases.HeldRelease) -> bool:
        """Sequences count within a chain, and a chain within the bucket it came from. From another bucket (the host
        was pointed at another environment), any chain is taken, older or not. In the same bucket, a chain made
        later replaces ours (a redeployed environment, a restored volume): start over from it; one made earlier
        is refused (an old release replayed)."""
        ours, bucket = self.state.chain, self.settings.bucket
        if release.chain is None or release.chain == ours:
            self.state.bucket = bucket
            return True
        moved = self.state.bucket is not None and self.state.bucket != bucket
        if ours is not None and not moved and release.chain.created_at <= ours.created_at:
            self._refused("older_chain", "release from a chain made before this host's", chain=release.chain.id,
                          ours=ours.id, sequence=release.sequence)
            return False
        if ours is not None:
            reason = "other_bucket" if moved else "newer_chain"
            self.metrics.chain_changes.labels(reason).inc()
            logs.warning("new release chain: starting over from it", reason=reason, chain=release.chain.id,
                         previous=ours.id, bucket=bucket, previous_bucket=self.state.bucket,
                         sequence=release.sequence, applied=self.state.highest_sequence)
        self.state.chain, self.state.bucket = release.chain, bucket
        self.state.sequence = self.state.highest_sequence = 0
        for sequence in views.list_views(self.volume):  # their numbers count in the old chain
            views.remove_view(self.volume, sequence)
        self.executor.view_log.clear()
        self._settled = None
        return True

    def _check(self, full: bool) -> Check:
        if not full:
            return "none"
        check: Check = "digest" if self.full_cycles % self.settings.digest_every == 0 else "stat"
        self.full_cycles += 1
        return check

    def _sync(self, full: bool, only: Collection[str] | None, events: Sequence[ChangeEvent]) -> SyncResult:
        if full and self.volume.ensure_airflowignore():
            # Without the managed block Airflow's parser fails the whole folder: repair it even if S3 is down.
            logs.warning("drift: .airflowignore managed block missing or changed, restored")
            self.metrics.drift_repairs.labels("airflowignore").inc()
        check = self._check(full)
        if check == "digest":
            self.etag = None  # the deep check re-reads release.json whole too
        release, changed = self.fetch_release(events)
        if not full and not changed:
            return SyncResult("noop", full, sequence=release.sequence)
        if full and check == "stat" and not changed and only is None and self._quiet():
            return self._quiet_cycle(release)
        self._quiet_mark = None
        if not self._admissible(release):
            return SyncResult("noop", full, sequence=release.sequence)
        misses = self.watch.misses
        found, limited = self._look(check, None if full or only is not None else self._changed)
        seen = self.watch.seen if self.watch.misses == misses and self.watch.available else None
        self._observe_drift(found.damaged, found.broken_links, found.unowned if limited is None else None)
        todo = plan(release, found.view, only, limited)
        fresh = release.sequence > self.state.sequence
        if not todo.empty:
            self.state.highest_sequence = max(self.state.highest_sequence, release.sequence)
        result = self.executor.apply(todo, self.state)
        if fresh and result.flipped:
            self.metrics.event_to_flip.observe(max(0.0, time.time() - release.published_at.timestamp()))
        self._settle(found.view.links, todo, result, limited)
        complete = not result.errors and not result.stopped
        if complete:
            self.state.sequence = max(self.state.sequence, release.sequence)
            self.state.highest_sequence = max(self.state.highest_sequence, release.sequence)
            self.state.release_etag = self.etag
        removed = self.retention.run(self.state, deep=check == "digest") if full and complete else 0
        self._save()
        # every folder that matters watched: the watch counts a miss for each folder it could not add, those the scan
        # read and the store folders of the projects fetched (new ones no scan read yet: _settle watches them)
        watched = self.watch.misses == misses
        exact = complete and watched and not todo.blocked and self.state.sequence == release.sequence and (
            todo.view is None or result.view == todo.view.sequence)
        self._settle_watch(release.sequence if exact and only is None else None)
        if complete and full:
            self.metrics.last_full_reconcile.set(time.time())
        if result.errors:
            why = "; ".join(f"{p}: {e}" for p, e in sorted(result.errors.items()))
            return SyncResult("error", full, error=why, sequence=release.sequence, applied=result)
        busy = result.changed or removed or found.adopted or found.damaged or found.broken_links
        if full and complete and todo.empty and not busy:
            self._quiet_mark = seen
        return SyncResult("success" if busy else "noop", full, sequence=release.sequence, applied=result)

    def _look(self, check: Check, changed: Collection[str] | None) -> tuple[ScanResult, Collection[str] | None]:
        """The scan, and the projects it was limited to (None: all of them)."""
        found = self._scan_changed(changed) if changed is not None else None
        if check == "none":
            self.metrics.event_looks.labels("scan" if found is None else "changed").inc()
        if found is None:
            return scan(self.volume, self.state, check, self.reader), None
        return found, changed

    def _scan_changed(self, changed: Collection[str]) -> ScanResult | None:
        """The volume as an event cycle needs it, reading only the projects that changed since the release held (a
        link and a store folder each; known from the events followed or from the shards of release.json's root), when
        the last cycle left the volume holding exactly that release, its view current, and the watch has seen nothing
        happen on it since (watch.py): every other project is then as that cycle left it. At 10,000 projects that is
        a few system calls instead of a pass over every project (the scan, then the view's repair a readlink per
        project). None: scan as usual (the full reconcile still looks at everything, whatever this found)."""
        settled, self._settled = self._settled, None
        if settled is None or not self.watch.available:
            return None
        self.watch.drain()
        if settled != (self._followed_from, self.watch.seen, self.watch.misses):
            return None
        current = self.reader.current_view()  # watched since it was written: read again only where events say
        if current is None or current[0] != self._followed_from:
            return None
        links: dict[str, str] = {}
        trees: dict[str, list[str]] = {}
        for project in changed:
            link, on_disk = self.volume.linked_tree(project), self.volume.trees_of(project)
            if link is None and os.path.lexists(self.volume.link_path(project)):
                return None  # not a link of ours: the scan says what it is
            if set(on_disk) != set(self.state.trees.get(project, ())) or (link is not None and link not in on_disk):
                return None  # a tree without a record, a record without a tree, a dangling link: the scan repairs
            if link is not None:
                links[project] = link
            if on_disk:
                trees[project] = on_disk
        return ScanResult(view=LocalView(sequence=self.state.highest_sequence, links=links, trees=trees,
                                         view=current[0], view_trees=current[1]))

    def _settle_watch(self, exact: int | None) -> None:
        """After a cycle: `exact`, the release the volume now holds exactly (None: not known). The watch is drained,
        so the events of the cycle's own writes are not taken for someone else's by the next event cycle (they are
        still handed to the reader, which reads those entries again at the next scan)."""
        self._settled = None
        if exact is not None and self.watch.available:
            self.watch.drain()
            self._settled = (exact, self.watch.seen, self.watch.misses)

    def _admissible(self, release: releases.HeldRelease) -> bool:
        """Not from an older chain, not older than what this host applied, not an older release put back."""
        if not self._same_chain(release):
            return False
        if release.sequence < self.state.highest_sequence:  # within a chain, signed or not, never go back
            self._refused("older_release", "ignored older release", sequence=release.sequence,
                          applied=self.state.highest_sequence)
            return False
        if release.sequence > self.state.highest_sequence and not self.from_event:
            self._check_newest(release)  # an event's release is the one right after the release held
        return True

    def _quiet_cycle(self, release: releases.HeldRelease) -> SyncResult:
        """A full reconcile of a quiet volume: only retention, which may have come due with time."""
        removed = self.retention.run(self.state, deep=False)
        if removed:
            self._save()
        self.metrics.last_full_reconcile.set(time.time())
        return SyncResult("success" if removed else "noop", True, sequence=release.sequence)

    def _quiet(self) -> bool:
        """Nothing on the volume changed since the last full scan found nothing to do, and that scan watched every
        folder and tree it read (watch.py): no event since, on any of them. Then, with release.json unchanged too,
        scanning and planning again would find nothing, so a stat cycle stops here; a deep cycle never does."""
        if self._quiet_mark is None or not self.watch.available:
            return False
        self.watch.drain()
        return self.watch.seen == self._quiet_mark

    def _observe_drift(self, damaged: list[tuple[str, str]], broken: list[str], unowned: list[str] | None) -> None:
        """`unowned`: None when the scan did not look at the whole DAG folder (what was found last time stands)."""
        for project, tree in damaged:
            logs.warning("drift: tree changed on disk, fetching it again", project=project, tree=tree)
            self.metrics.drift_repairs.labels("tree").inc()
        for project in broken:
            logs.warning("drift: link missing, retargeted or dangling", project=project)
            self.metrics.drift_repairs.labels("link").inc()
        if unowned is None:
            return
        self.metrics.unowned_entries.set(len(unowned))
        if unowned != self._unowned:
            if unowned:
                logs.warning("entries not owned by dagsync left alone", entries=unowned)
            self._unowned = list(unowned)

    def _settle(self, scanned: Mapping[str, str], todo: Plan, result: ApplyResult,
                changed: Collection[str] | None) -> None:
        """Record what the apply left on disk, the links and the view it wrote, without reading it again; a tree
        that is no longer linked starts its retention clock. `changed`: the scan looked at these projects only
        (_scan_changed), the others' links are as recorded."""
        if todo.view is not None and result.view == todo.view.sequence:
            self.reader.seed_view(result.view, todo.view.trees)
        for project in result.fetched:
            self.reader.watch_store(project)
        after = _links_after(scanned, todo, result)
        links: dict[str, str] = {} if changed is None else self.state.links
        for name in after if changed is None else changed:
            tree = after.get(name)
            if tree and self.state.record(name, tree) is not None:
                links[name] = tree
            else:
                links.pop(name, None)
        self.state.links = links
        now = time.time()
        for project in self.state.trees if changed is None else [p for p in changed if p in self.state.trees]:
            self.state.mark_live(project, links.get(project), now)

    def _gauges(self) -> None:
        self.metrics.applied_sequence.set(self.state.sequence)
        self.metrics.projects_live.set(len(self.state.links))

    def _save(self) -> None:
        self._gauges()
        data = dump_state(self.state)  # once: its fingerprint says whether it changed, and it is what is written
        saved = _fingerprint(data)
        if saved != self._saved:
            write_atomic(self.volume.state_path, data)
            self._saved = saved

    def _report(self) -> None:
        """hosts/<host>.json after every change of applied state and on errors; best effort."""
        if not self.settings.write_status:
            return
        against = self.release.sequence if self.release else 0
        # every project as released (the last cycle said so): no differences to look for
        exact = self._settled is not None and self._settled[0] == against and self.release is not None and (
            self.release.chain == self.state.chain and len(self.state.links) == len(self.release.projects))
        links = "" if exact else "\0".join(f"{k}\0{v}" for k, v in self.state.links.items())  # a reorder costs a write
        key = (self.state.sequence, against, exact, _fingerprint(links.encode()), self.last_error)
        if key == self._last_status:
            return  # the links say every version
        status = HostStatus(
            host=self.settings.host,
            sequence=self.state.sequence,
            against=against,
            differences={} if exact else HostStatus.differences_from(self.release, self.state.versions()),
            last_error=self.last_error,
            agent_version=AGENT_VERSION,
            updated_at=utcnow(),
        )
        try:
            self.store.put(
                keys.host_status_key(self.settings.host), serde.dump_json(status), content_type=JSON
            )
            self._last_status = key
        except Exception as exc:
            logs.warning("could not write host status", error=_describe(exc))


def _links_after(scanned: Mapping[str, str], todo: Plan, result: ApplyResult) -> Mapping[str, str]:
    """The links on disk after an apply: as the scan found them, with the flips and unlinks the apply made (the
    links nobody else writes; a link changed behind the agent's back meanwhile shows at the next scan)."""
    if not (result.flipped or result.unlinked):
        return scanned
    links = dict(scanned)
    flipped = set(result.flipped)
    links.update((step.project, step.tree) for step in todo.link if step.project in flipped)
    for project in result.unlinked:
        links.pop(project, None)
    return links


def _fingerprint(data: bytes) -> bytes:
    """What tells two states (or two sets of links) apart, in 16 bytes instead of a copy of each."""
    return hashlib.blake2b(data, digest_size=16).digest()


def _describe(exc: BaseException) -> str:
    return describe(exc, plain=(ReleaseUnavailable, UnknownProject))
