"""The thin executor: carries out a Plan on the volume. Decides nothing.

Order: every fetch first (download, verify size and sha256, safe-extract into staging, rename into the
store), then fresh mtimes on the trees about to become live, then the release view and its one `current` flip
(only once every tree of the release is in the store), then every per-project flip, then every unlink. A project
whose fetch fails keeps its old link; the others go ahead. A stop request is honoured between steps, never
inside one."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from dagsync.core.store import ObjectStore

from . import logs, views
from .fetch import describe, fetch_tree
from .metrics import Metrics
from .planner import Fetch, Link, Plan
from .state import AgentState, TreeRecord, listing_digest
from .volume import Volume, VolumeError, tree_listing

T = TypeVar("T")
R = TypeVar("R")

FETCH_WORKERS = 4
# How far ahead of now a tree's files are stamped when it becomes live (see Executor._touch): it must cover the
# time until Airflow's DAG processor takes up the release (its refresh tick, 1 s with the documented settings) plus
# one parse of a DAG file that was already running then (under a second measured; docs/airflow.md).
TOUCH_AHEAD_S = 3.0


@dataclass
class ApplyResult:
    errors: dict[str, str] = field(default_factory=dict)  # project -> why it was not applied
    fetched: list[str] = field(default_factory=list)
    flipped: list[str] = field(default_factory=list)
    unlinked: list[str] = field(default_factory=list)
    view: int | None = None  # the release view made current
    stopped: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.fetched or self.flipped or self.unlinked or self.view)


class Executor:
    def __init__(self, store: ObjectStore, volume: Volume, metrics: Metrics, stop: threading.Event, *,
                 keep_views: int) -> None:
        self.store = store
        self.keep_views = keep_views  # old release views kept: once there are that many, the oldest is recycled
        self.view_log = views.ViewLog()  # what is known of the views written, to recycle one by what changed
        self.volume = volume
        self.metrics = metrics
        self.stop = stop

    def apply(self, plan: Plan, state: AgentState) -> ApplyResult:
        result = ApplyResult()
        for project in plan.blocked:
            result.errors[project] = f"{self.volume.link_path(project)} exists and is not dagsync's; left alone"
        self._fetch_all(plan.fetch, state, result)
        if result.stopped:
            return result
        self._touch(plan.touch, state)
        if plan.view is not None:
            self._write_view(plan.view.sequence, plan.view.trees, [f.project for f in plan.fetch], result)
        now = time.time()
        for link in plan.link:
            if link.project in result.errors:
                continue
            try:
                self.volume.flip(link.project, link.tree)
            except (OSError, VolumeError) as exc:
                result.errors[link.project] = describe(exc)
                logs.error("flip failed", project=link.project, tree=link.tree, error=describe(exc))
                continue
            state.mark_live(link.project, link.tree, now)
            state.links[link.project] = link.tree
            result.flipped.append(link.project)
            logs.info("flipped", project=link.project, tree=link.tree)
        for project in plan.unlink:
            try:
                self.volume.unlink(project)
            except OSError as exc:
                result.errors[project] = describe(exc)
                continue
            state.mark_live(project, None, now)
            state.links.pop(project, None)
            result.unlinked.append(project)
            logs.info("unlinked", project=project)
        return result

    def _touch(self, links: tuple[Link, ...], state: AgentState) -> None:
        """Fresh mtimes (a little ahead of now) on trees about to become live, recorded so that the stat check
        still sees no drift. Airflow re-parses a known file early only if its mtime is newer than its last parse
        finished: the margin covers a parse of the old tree that is still running when the flip lands."""
        when = time.time() + TOUCH_AHEAD_S
        for link in links:
            rec = state.record(link.project, link.tree)
            if rec is None:
                continue  # its fetch failed; the error is reported there
            try:
                self.volume.touch_tree(link.project, link.tree, when)
                rec.listing = listing_digest(tree_listing(self.volume.tree_path(link.project, link.tree)))
            except OSError as exc:
                logs.warning("could not refresh mtimes", project=link.project, tree=link.tree, error=describe(exc))

    def _write_view(self, sequence: int, trees: Mapping[str, str], fetched: list[str], result: ApplyResult) -> None:
        """The release view, once every tree it names is in the store; then `current` flips to it (one rename)."""
        try:
            # the scan saw the others in the store
            views.write_view(self.volume, sequence, trees, verify=fetched, recycle_at=self.keep_views,
                             log=self.view_log)
        except views.TreesMissing as exc:
            logs.warning("release view not written: trees missing", sequence=sequence, projects=exc.projects)
            return
        except OSError as exc:
            result.errors[f"release view {sequence}"] = describe(exc)
            logs.error("release view failed", sequence=sequence, error=describe(exc))
            return
        result.view = sequence
        logs.info("release view current", sequence=sequence, projects=len(trees))

    def _fetch_all(self, steps: tuple[Fetch, ...], state: AgentState, result: ApplyResult) -> None:
        """Up to FETCH_WORKERS fetches at once: one project's download and fsyncs wait while another's are
        extracted (a cold sync of 1,000 projects was fsync- and round-trip-bound; docs/benchmarks.md). Each
        fetch is still all-or-nothing for its project; results are recorded here, in plan order."""

        def run(step: Fetch) -> TreeRecord | None:
            return None if self.stop.is_set() else self._fetch(step)

        workers = max(1, min(FETCH_WORKERS, len(steps)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fetch") as pool:
            for step, future in in_order(pool, run, steps, 4 * workers):
                try:
                    rec = future.result()
                except Exception as exc:  # S3, checksum, archive, disk: reported per project, never fatal
                    result.errors[step.project] = describe(exc)
                    logs.error("fetch failed", project=step.project, tree=step.entry.tree_name, error=describe(exc))
                    continue
                if rec is None:
                    result.stopped = True  # a stop request is honoured between fetches, never inside one
                    continue
                state.trees.setdefault(step.project, {})[step.entry.tree_name] = rec
                result.fetched.append(step.project)

    def _fetch(self, step: Fetch) -> TreeRecord:
        rec = fetch_tree(self.store, self.volume, step.project, step.entry, on_bytes=self.metrics.bytes_downloaded.inc)
        logs.info("fetched", project=step.project, tree=step.entry.tree_name, bytes=step.entry.size,
                  files=step.entry.files)
        return rec

    def remove_trees(self, doomed: list[tuple[str, str]], state: AgentState) -> int:
        removed = 0
        for project, tree in doomed:
            if state.links.get(project) == tree or self.volume.linked_tree(project) == tree:
                continue  # never delete what a link points at
            try:
                self.volume.remove_tree(project, tree)
            except OSError as exc:
                logs.warning("retention could not remove tree", project=project, tree=tree, error=describe(exc))
                continue
            state.trees.get(project, {}).pop(tree, None)
            removed += 1
            logs.info("removed old tree", project=project, tree=tree)
        self.metrics.trees_removed.inc(removed)
        return removed


def in_order(pool: ThreadPoolExecutor, run: Callable[[T], R], items: Iterable[T],
             ahead: int) -> Iterator[tuple[T, Future[R]]]:
    """Each item with the future of `run(item)`, in order, with at most `ahead` submitted and not yet handed over:
    a cold sync of 10,000 projects submitted as many futures at once, each with its lock and condition (cold peak
    RSS 111 -> 95 MiB)."""
    pending: deque[tuple[T, Future[R]]] = deque()
    for item in items:
        pending.append((item, pool.submit(run, item)))
        if len(pending) >= ahead:
            yield pending.popleft()
    while pending:
        yield pending.popleft()
