"""The volume's folders as the scan needs them, re-read only where a Watch saw a change (watch.py).

Each folder's entries are kept with what the scan wants of each (a link's tree, a store folder); a watched
folder re-reads only the entries its events named, an unwatched or unknown one is read whole, and `whole=True`
(the deep cycle) reads everything again whatever the events said."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from typing import TypeVar

from . import views
from .volume import OWN_NAMES, TMP_LINK_PREFIX, Volume
from .watch import Watch

V = TypeVar("V")
# A folder to read whole at the next scan, under the key it will keep (the watch's string for it: one copy of each
# store folder's path, not two, 10,000 of them at 10,000 projects)
_UNREAD: dict[str, object] = {}
Link = tuple[str | None, bool]  # (the tree our link points at, or None; whether the entry is a symlink)


class VolumeReader:
    def __init__(self, volume: Volume, watch: Watch) -> None:
        self.volume, self.watch = volume, watch
        self._folders: dict[str, dict[str, object]] = {}
        self.store = os.fspath(volume.store)
        self.views = os.fspath(views.views_dir(volume))
        self._views: set[str] = set()  # the view folders read or seeded: one is current, the others are let go

    def _read(self, folder: str, one: Callable[[str], V | None], whole: bool) -> tuple[dict[str, V], bool]:
        """The folder's entries (name -> what `one` says of it; None: left out), and whether any was read again."""
        names = self.watch.take(folder)  # before reading: a change made while reading shows next time
        cached: dict[str, V] | None = self._folders.get(folder)  # type: ignore[assignment]
        if names is None or whole or cached is None or cached is _UNREAD:
            try:
                listed = os.listdir(folder)
            except FileNotFoundError:
                listed = []
            cached = {}
            names = set(listed)
        for name in names:
            value = one(name)
            if value is None:
                cached.pop(name, None)
            else:  # project and tree names are held in several places: one copy of each (intern)
                cached[sys.intern(name)] = value
        self._folders[folder] = cached  # type: ignore[assignment]
        return cached, bool(names)

    def trees(self, whole: bool = False) -> dict[str, list[str]]:
        """project -> the trees in its store folder, as Volume.list_trees."""
        def folder(parent: str) -> Callable[[str], bool | None]:
            return lambda name: True if not name.startswith(".") and os.path.isdir(os.path.join(parent, name)) else None

        projects, moved = self._read(self.store, folder(self.store), whole)
        out = {}
        for project in sorted(projects):
            path = f"{self.store}/{project}"
            trees, changed = self._read(path, folder(path), whole)
            out[project] = list(trees)
            moved = moved or changed
        if moved:  # a project or a tree left the store (or came): stop watching what is gone
            keep = {f"{self.store}/{p}" for p in out}
            for path in [p for p in self._folders if p.startswith(self.store + "/") and p not in keep]:
                del self._folders[path]
            self.watch.keep(keep | {f"{self.store}/{p}/{t}" for p, ts in out.items() for t in ts}, self.store)
        return out

    def links(self, whole: bool = False) -> dict[str, Link]:
        """Every entry of the DAG folder but the agent's own: the tree it links to (ours) and whether it is a
        symlink at all."""
        root = os.fspath(self.volume.root)

        def one(name: str) -> Link | None:
            if name in OWN_NAMES or name.startswith(TMP_LINK_PREFIX):
                return None
            tree = self.volume.linked_tree(name)
            if tree is not None:
                return sys.intern(tree), True
            path = os.path.join(root, name)
            return (None, True) if os.path.islink(path) else (None, False) if os.path.lexists(path) else None

        return self._read(root, one, whole)[0]

    def watch_store(self, project: str) -> None:
        """A project's store folder the agent may just have made (a fetch): watched from now on, so that the watch
        vouches for it before any scan read it; read whole at the next scan, as any folder not read yet."""
        folder = f"{self.store}/{project}"
        if not self.watch.watching(folder):
            self._folders.pop(folder, None)
            self._folders[folder] = _UNREAD
            self.watch.take(folder)

    def seed_view(self, sequence: int, trees: Mapping[str, str]) -> None:
        """A view the agent has just written, taken as the next scan would read it (a readlink per project spared:
        a second at 10,000), and watched from now on like any folder read. Only a folder not already known and only
        with a working watch; the deep cycle reads it whole again."""
        folder = os.fspath(views.view_path(self.volume, sequence))
        if folder in self._folders or not self.watch.available:
            return
        names = self.watch.take(folder)
        self._views.add(folder)
        if names is None and self.watch.watching(folder):
            self._folders[folder] = dict(trees)

    def current_view(self, whole: bool = False) -> tuple[int, dict[str, str]] | None:
        """As views.current_view. The agent's own folder is watched too, for `current` (read every time)."""
        self.watch.take(os.fspath(self.volume.meta))
        sequence = views.current_sequence(self.volume)
        if sequence is None:
            return None
        folder = os.fspath(views.view_path(self.volume, sequence))
        if not os.path.isdir(folder):
            return None

        def one(name: str) -> str | None:
            if name.startswith("."):
                return None
            try:
                tree = views.tree_of(name, os.readlink(os.path.join(folder, name)))
            except OSError:
                return None
            return sys.intern(tree) if tree is not None else None

        found = self._read(folder, one, whole)[0]
        for path in self._views - {folder}:  # views no longer current: not read again unless current again
            self._folders.pop(path, None)
            self.watch.forget(path)
        self._views = {folder}
        return sequence, dict(found)
