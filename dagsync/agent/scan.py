"""Look at the volume and say what is there: the planner's LocalView plus the drift found.

Cheap checks (readlink, a stat walk compared with the recorded manifest) can run every cycle; the deep
check (sha256 of every file) runs when asked. Damaged trees are left out of the view, so the planner
fetches them again; entries dagsync does not own are reported and never touched."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Literal

from . import views
from .planner import LocalView
from .state import AgentState, TreeRecord
from .volume import Volume, tree_digest, tree_listing

Check = Literal["none", "stat", "digest"]


@dataclass
class ScanResult:
    view: LocalView
    damaged: list[tuple[str, str]] = field(default_factory=list)  # (project, tree) failing a check
    broken_links: list[str] = field(default_factory=list)  # ours, but missing, retargeted or dangling
    unowned: list[str] = field(default_factory=list)  # entries in the DAG folder that are not ours
    adopted: list[tuple[str, str]] = field(default_factory=list)  # trees found on disk with no record


def record_tree(volume: Volume, project: str, tree: str, *, sha256: str = "") -> TreeRecord:
    path = volume.tree_path(project, tree)
    return TreeRecord(
        version=tree.rsplit("-", 1)[0], sha256=sha256, listing=tree_listing(path), digest=tree_digest(path)
    )


def adopt_tree(volume: Volume, state: AgentState, project: str, tree: str) -> TreeRecord:
    """Record a tree found in the store with no record. It was fully extracted and fsynced before its rename
    into the store, so it is whole; unless linked, its retention clock starts at its mtime."""
    rec = record_tree(volume, project, tree)
    rec.retired_at = None if state.links.get(project) == tree else _mtime(volume, project, tree)
    state.trees.setdefault(project, {})[tree] = rec
    return rec


def _check_tree(volume: Volume, project: str, tree: str, rec: TreeRecord, check: Check) -> bool:
    path = volume.tree_path(project, tree)
    if check == "none":
        return True
    if check == "stat":
        return tree_listing(path) == [tuple(e) for e in rec.listing]
    return tree_digest(path) == rec.digest


def _scan_trees(volume: Volume, state: AgentState, check: Check, result: ScanResult) -> dict[str, set[str]]:
    healthy: dict[str, set[str]] = {}
    on_disk = volume.list_trees()
    for project, trees in on_disk.items():
        for tree in trees:
            rec = state.record(project, tree)
            if rec is None:
                adopt_tree(volume, state, project, tree)
                result.adopted.append((project, tree))
            elif not _check_tree(volume, project, tree, rec, check):
                result.damaged.append((project, tree))
                continue
            healthy.setdefault(project, set()).add(tree)
    for project in list(state.trees):  # forget records of trees that are gone
        for tree in list(state.trees[project]):
            if tree not in on_disk.get(project, ()):
                del state.trees[project][tree]
        if not state.trees[project]:
            del state.trees[project]
    return healthy


def _mtime(volume: Volume, project: str, tree: str) -> float:
    try:
        return volume.tree_path(project, tree).stat().st_mtime
    except OSError:
        return time.time()


def scan(volume: Volume, state: AgentState, check: Check = "stat") -> ScanResult:
    result = ScanResult(view=LocalView())
    healthy = _scan_trees(volume, state, check, result)
    links: dict[str, str] = {}
    blocked: list[str] = []
    present = set(volume.entries())
    for name in sorted(present):
        tree = volume.linked_tree(name)
        if tree is not None:
            links[name] = tree
            if tree not in healthy.get(name, set()):
                result.broken_links.append(name)
        elif name in state.links and os.path.islink(volume.link_path(name)):
            links[name] = ""  # ours, retargeted elsewhere: repair
            result.broken_links.append(name)
        else:
            result.unowned.append(name)
            blocked.append(name)
    for name in sorted(set(state.links) - present):
        result.broken_links.append(name)  # our link was deleted: the planner links it again
    view = views.current_view(volume)
    result.view = LocalView(sequence=state.highest_sequence, links=links, trees=healthy, blocked=blocked,
                            view=view[0] if view else 0, view_trees=view[1] if view else {})
    return result
