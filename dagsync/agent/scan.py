"""Look at the volume and say what is there: the planner's LocalView plus the drift found.

Cheap checks (readlink, a stat walk compared with the recorded manifest) can run every cycle; the stat walk is
skipped for a tree the watch saw no change in since its last check, and replaced by the deep one for a tree it
saw an event in (watch.py). The deep check (sha256 of every file) runs when asked, on every tree. Damaged trees
are left out of the view, so the planner fetches them again; entries dagsync does not own are reported and never
touched."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .planner import LocalView
from .reader import VolumeReader
from .state import AgentState, TreeRecord, listing_digest
from .volume import Volume, tree_digest, tree_listing
from .watch import Watch

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
        version=sys.intern(tree.rsplit("-", 1)[0]), sha256=sha256, listing=listing_digest(tree_listing(path)),
        digest=tree_digest(path)
    )


def adopt_tree(volume: Volume, state: AgentState, project: str, tree: str) -> TreeRecord:
    """Record a tree found in the store with no record. It was fully extracted and fsynced before its rename
    into the store, so it is whole; unless linked, its retention clock starts at its mtime."""
    rec = record_tree(volume, project, tree)
    rec.retired_at = None if state.links.get(project) == tree else _mtime(volume, project, tree)
    state.trees.setdefault(project, {})[tree] = rec
    return rec


def _check_tree(key: str, rec: TreeRecord, check: Check, watch: Watch) -> bool:
    """`key`: the tree's path (a string: this runs for every tree every cycle)."""
    if check == "none" or (check == "stat" and not watch.changed(key)):
        return True
    if check == "stat" and watch.touched(key):
        check = "digest"  # an event in it: the stat check could miss an edit that kept size and mtime
    watch.watch_tree(key)  # before the check: a change made during it is seen next cycle
    path = Path(key)
    good = listing_digest(tree_listing(path)) == rec.listing if check == "stat" else tree_digest(path) == rec.digest
    if not good:
        watch.forget(key)
    return good


def _scan_trees(reader: VolumeReader, state: AgentState, check: Check, result: ScanResult) -> dict[str, set[str]]:
    healthy: dict[str, set[str]] = {}
    volume, store = reader.volume, reader.store
    on_disk = reader.trees(whole=check == "digest")
    for project, trees in on_disk.items():
        for tree in trees:
            rec = state.record(project, tree)
            if rec is None:
                adopt_tree(volume, state, project, tree)
                result.adopted.append((project, tree))
            elif not _check_tree(f"{store}/{project}/{tree}", rec, check, reader.watch):
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


def scan(volume: Volume, state: AgentState, check: Check = "stat", reader: VolumeReader | None = None) -> ScanResult:
    """`reader`: the folders as last read, kept current by a watch (None: read everything)."""
    reader = reader or VolumeReader(volume, Watch.unavailable())
    reader.watch.drain()
    result = ScanResult(view=LocalView())
    healthy = _scan_trees(reader, state, check, result)
    links: dict[str, str] = {}
    blocked: list[str] = []
    present = reader.links(whole=check == "digest")
    for name in sorted(present):
        tree, symlink = present[name]
        if tree is not None:
            links[name] = tree
            if tree not in healthy.get(name, set()):
                result.broken_links.append(name)
        elif name in state.links and symlink:
            links[name] = ""  # ours, retargeted elsewhere: repair
            result.broken_links.append(name)
        else:
            result.unowned.append(name)
            blocked.append(name)
    for name in sorted(set(state.links) - set(present)):
        result.broken_links.append(name)  # our link was deleted: the planner links it again
    view = reader.current_view(whole=check == "digest")
    result.view = LocalView(sequence=state.highest_sequence, links=links, trees=healthy, blocked=blocked,
                            view=view[0] if view else 0, view_trees=view[1] if view else {})
    return result
