"""Retention: old store trees and release views go; what is live, in the current view or held by a task stays.

Protection only ever keeps more, so when nothing would go even unprotected, the volume lock, the holds and the
current view are not read at all: at 10,000 projects the minute's reconcile then costs a length check per
project. Every view is read only when a tree left the store, or on a deep cycle."""

from __future__ import annotations

import time
from collections.abc import Collection

from . import holds, logs, views
from .executor import Executor
from .fetch import describe
from .planner import plan_retention, plan_view_retention
from .state import AgentState
from .volume import Volume


class Retention:
    def __init__(self, volume: Volume, executor: Executor, keep: int, grace: float, *, keep_views: int) -> None:
        self.volume, self.executor, self.keep, self.grace = volume, executor, keep, grace
        self.keep_views = keep_views

    def run(self, state: AgentState, *, deep: bool) -> int:
        """Trees removed. Under the volume lock, taken without waiting: a bundle materializing a release holds it,
        and retention can wait for the next full reconcile. `deep`: read every view to find those naming a tree
        that left the store (else only when this cycle removed trees)."""
        if not deep and not self._doomed(state, ()) and not self._old_views(views.current_sequence(self.volume), False):
            return 0
        with holds.volume_lock(self.volume, timeout=0) as locked:
            if not locked:
                logs.info("retention skipped this cycle: the volume is locked by an Airflow task")
                return 0
            try:
                protected = holds.held_trees(self.volume)
            except (OSError, holds.HoldUnreadable) as exc:
                logs.warning("retention skipped this cycle", error=describe(exc))
                return 0
            current = views.current_view(self.volume)
            doomed = self._doomed(state, protected | (set(current[1].items()) if current else set()))
            removed = self.executor.remove_trees(doomed, state) if doomed else 0
            for sequence in self._old_views(current[0] if current else None, deep or removed > 0):
                views.remove_view(self.volume, sequence)
                logs.info("removed old release view", sequence=sequence)
        return removed

    def _doomed(self, state: AgentState, protected: Collection[tuple[str, str]]) -> list[tuple[str, str]]:
        keep = self.keep  # a project with no more trees than that has none to remove
        history = {
            project: {tree: None if (project, tree) in protected else rec.retired_at for tree, rec in trees.items()}
            for project, trees in state.trees.items() if len(trees) > keep
        }
        return plan_retention(history, keep=keep, grace=self.grace, now=time.time())

    def _old_views(self, current: int | None, deep: bool) -> list[int]:
        """Views to remove: beyond `keep_views` besides the current one, oldest first, and (`deep`) those naming a
        tree that left the store. A view is written only once every tree it names is in the store, so it can only
        break when a tree leaves: only then (and on deep cycles) is every view read, a readlink per project per
        view."""
        known: dict[int, dict[str, str]] = {}
        for sequence in views.list_views(self.volume):
            try:
                known[sequence] = views.read_view(views.view_path(self.volume, sequence)) if deep else {}
            except OSError:
                continue
        present = {(p, t) for p, trees in self.volume.list_trees().items() for t in trees} if deep else set()
        return plan_view_retention(known, present=present, current=current, keep=self.keep_views)
