"""The thin executor: carries out a Plan on the volume. Decides nothing.

Order: every fetch first (download, verify size and sha256, safe-extract into staging, rename into the
store), then every flip, then every unlink. A project whose fetch fails keeps its old link; the others
go ahead. A stop request is honoured between steps, never inside one."""

from __future__ import annotations

import errno
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from dagsync.core.archive import UnsafeArchive, sha256_file
from dagsync.core.store import ObjectStore

from . import logs
from .metrics import Metrics
from .planner import Fetch, Plan
from .scan import record_tree
from .state import AgentState, TreeRecord
from .volume import Volume, VolumeError

FETCH_WORKERS = 4


@dataclass
class ApplyResult:
    errors: dict[str, str] = field(default_factory=dict)  # project -> why it was not applied
    fetched: list[str] = field(default_factory=list)
    flipped: list[str] = field(default_factory=list)
    unlinked: list[str] = field(default_factory=list)
    stopped: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.fetched or self.flipped or self.unlinked)


class Executor:
    def __init__(self, store: ObjectStore, volume: Volume, metrics: Metrics, stop: threading.Event) -> None:
        self.store = store
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

    def _fetch_all(self, steps: tuple[Fetch, ...], state: AgentState, result: ApplyResult) -> None:
        """Up to FETCH_WORKERS fetches at once: one project's download and fsyncs wait while another's are
        extracted (a cold sync of 1,000 projects was fsync- and round-trip-bound; docs/benchmarks.md). Each
        fetch is still all-or-nothing for its project; results are recorded here, in plan order."""

        def run(step: Fetch) -> TreeRecord | None:
            return None if self.stop.is_set() else self._fetch(step)

        workers = max(1, min(FETCH_WORKERS, len(steps)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fetch") as pool:
            for step, future in [(step, pool.submit(run, step)) for step in steps]:
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
        entry, project = step.entry, step.project
        tree = entry.tree_name
        part = self.volume.staging / f"{project}--{tree}.tar.gz.part"
        try:
            with part.open("wb") as fh:
                self.store.download(entry.archive_key, fh, on_bytes=self.metrics.bytes_downloaded.inc)
            size = part.stat().st_size
            if size != entry.size:
                raise UnsafeArchive(f"{entry.archive_key}: {size} bytes, the release says {entry.size}")
            digest = sha256_file(part)
            if digest != entry.sha256:
                raise UnsafeArchive(f"{entry.archive_key}: sha256 {digest} does not match the release")
            self.volume.install(project, tree, part)
        finally:
            part.unlink(missing_ok=True)
        rec = record_tree(self.volume, project, tree, sha256=entry.sha256)
        logs.info("fetched", project=project, tree=tree, bytes=entry.size, files=entry.files)
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


def describe(exc: BaseException, *, plain: tuple[type[BaseException], ...] = ()) -> str:
    """An error for logs and hosts/<host>.json: our own errors as they are, others with their type."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return f"disk full: {exc}"
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, (UnsafeArchive, *plain)) else f"{type(exc).__name__}: {text}"
