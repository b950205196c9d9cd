"""Reading what the pages show, through caches: a read of the live state (manifest, release, rejection, hosts) serves
every request for `ttl` seconds, and concurrent requests wait for one read instead of making their own. What never
changes once written is kept by name: release roots of the history by sequence, shards by digest, catalog entries
by (project, version). Read-only: nothing here writes to the bucket."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from dagsync.core import releases
from dagsync.core.documents import read_catalog
from dagsync.core.history import read_history
from dagsync.core.models import CatalogEntry, HistoryEntry, ReleasedProject, ReleaseRoot, utcnow
from dagsync.core.store import ObjectStore
from dagsync.publish.view import DeploymentView, read_view

T = TypeVar("T")
MAX_KEPT = 4096  # entries per immutable cache before it starts over (a UI does not need more)


@dataclass(frozen=True)
class Live:
    """One read of the live state, with the release's root (who wrote the manifest, the signature) and the catalog
    entry of each live project's version (when and by whom it was published)."""

    view: DeploymentView
    root: ReleaseRoot | None
    published: dict[str, CatalogEntry]
    read_at: datetime
    untrusted: str | None = None  # why the trusted keys refuse the live release (hosts do not apply it)
    checked: bool = False  # whether its signature was checked at all (trusted keys set)


@dataclass(frozen=True)
class ReleaseRead:
    root: ReleaseRoot
    projects: dict[str, ReleasedProject]
    before: dict[str, ReleasedProject] | None  # release sequence - 1; None when the history no longer has it


@dataclass(frozen=True)
class ProjectRead:
    project: str
    entries: list[CatalogEntry]  # the catalog, oldest first
    history: list[HistoryEntry]  # oldest first


class TtlCache:
    """Values by key for `ttl` seconds. One load at a time: a request that finds its value loading waits for it, so
    a burst of requests costs one read (and the immutable caches below are only touched under this lock). A load
    that failed is kept as long, so an unreachable bucket costs one attempt per TTL, not one per waiting request."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.clock = ttl, clock
        self._values: dict[object, tuple[float, object, Exception | None]] = {}
        self._lock = threading.Lock()

    def get(self, key: object, load: Callable[[], T]) -> T:
        with self._lock:
            hit = self._values.get(key)
            if hit is None or self.clock() >= hit[0]:
                value: object = None
                error: Exception | None = None
                try:
                    value = load()
                except Exception as exc:
                    error = exc
                if len(self._values) >= MAX_KEPT:
                    self._values.clear()
                hit = self._values[key] = (self.clock() + self.ttl, value, error)
            if hit[2] is not None:
                raise hit[2]
            return hit[1]  # type: ignore[return-value]


class Source:
    def __init__(self, store: ObjectStore, ttl: float, clock: Callable[[], float] = time.monotonic,
                 verifier: releases.Verifier | None = None) -> None:
        self.store, self.verifier = store, verifier
        self.cache = TtlCache(ttl, clock)
        self.shards = releases.ShardCache()
        self._roots: dict[int, ReleaseRoot] = {}
        self._entries: dict[tuple[str, str], CatalogEntry] = {}

    def live(self) -> Live:
        return self.cache.get("live", self._read_live)

    def release(self, sequence: int) -> ReleaseRead | None:
        """Release `sequence` and the one before it; None when it is not in the bucket."""
        return self.cache.get(("release", sequence), lambda: self._read_release(sequence))

    def project(self, project: str) -> ProjectRead | None:
        """A project's catalog and history; None when it was never published nor live."""
        return self.cache.get(("project", project), lambda: self._read_project(project))

    def _read_live(self) -> Live:
        view = read_view(self.store, self.shards)
        root = self._root(view.sequence) if view.release else None
        if root is not None:
            self.shards.keep(root.shards.values())  # shards of releases looked at before are fetched again if needed
        live = {name: entry.version for name, entry in (view.release.projects if view.release else {}).items()}
        self._read_catalogs(sorted({n for n, v in live.items() if (n, v) not in self._entries}))
        published = {n: self._entries[(n, v)] for n, v in live.items() if (n, v) in self._entries}
        return Live(view=view, root=root, published=published, read_at=utcnow(), untrusted=self._untrusted(root),
                    checked=self.verifier is not None)

    def _untrusted(self, root: ReleaseRoot | None) -> str | None:
        """Why the trusted keys refuse `root` (what every host would say), None when they accept it or none are set.
        The pages show a release as the bucket has it either way, and say when hosts will not apply it."""
        if root is None or self.verifier is None:
            return None
        try:
            self.verifier.verify(root.model_dump(mode="json"))
        except releases.UntrustedRelease as exc:
            return str(exc)
        return None

    def _root(self, sequence: int) -> ReleaseRoot | None:
        """Release `sequence`'s root: from the history (immutable, so kept), else release.json if it is that one
        (the history entry is written just after release.json)."""
        if sequence in self._roots:
            return self._roots[sequence]
        stored = releases.read_root_at(self.store, releases.AcceptUnsigned(), sequence)
        if stored is None:
            return None
        if len(self._roots) >= MAX_KEPT:
            self._roots.clear()
        self._roots[sequence] = stored.root
        return stored.root

    def _projects(self, root: ReleaseRoot) -> dict[str, ReleasedProject]:
        return releases.load_shards(self.store, root, self.shards)

    def _read_release(self, sequence: int) -> ReleaseRead | None:
        root = self._root(sequence)
        if root is None:
            return None
        previous = self._root(sequence - 1) if sequence > 1 else None
        return ReleaseRead(root=root, projects=self._projects(root),
                           before=None if previous is None else self._projects(previous))

    def _read_catalogs(self, projects: list[str]) -> None:
        """The catalogs of `projects`, whose live version's entry is not kept yet. Entries are append-only (a
        version's entry never changes once published), so each is read once; a UI that opens on 10,000 live projects
        reads their catalogs once, FETCH_WORKERS at a time."""
        if not projects:
            return
        if len(self._entries) + len(projects) >= MAX_KEPT:
            self._entries.clear()
        with ThreadPoolExecutor(max_workers=min(releases.FETCH_WORKERS, len(projects))) as pool:
            for project, catalog in zip(projects, pool.map(lambda p: read_catalog(self.store, p), projects),
                                        strict=True):
                for entry in catalog.entries if catalog else []:
                    self._entries[(project, entry.version)] = entry

    def _read_project(self, project: str) -> ProjectRead | None:
        catalog = read_catalog(self.store, project)
        history = read_history(self.store, project)
        if catalog is None and not history:
            return None
        return ProjectRead(project=project, entries=list(catalog.entries) if catalog else [], history=history)
