"""Release views: one folder of relative links per release, and one `current` link flipped by one rename.

    .dagsync/views/<sequence>/<project> -> ../../store/<project>/<version>-<sha12>   (every project of the release)
    .dagsync/current -> views/<sequence>                                              (os.replace: one flip)

A reader of `.dagsync/current/` (the Airflow bundle's DAG processor) sees every project of one release or every
project of the next, never a mix: a release that changes a shared library and the projects importing it lands in
one rename. The per-project links in the DAG folder (the classic dags-folder mode) are kept as they were.
A view is written only once every tree it names is in the store; it is repaired link by link (each an
os.replace), never removed and re-made, so its folder never disappears under a reader."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Collection, Mapping
from pathlib import Path

from dagsync.core.archive import fsync_dir

from . import holds
from .volume import TMP_PREFIX, Volume

VIEWS = "views"
CURRENT = "current"


def views_dir(volume: Volume) -> Path:
    return volume.meta / VIEWS


def current_path(volume: Volume) -> Path:
    """The path the Airflow bundle's DAG processor parses: the same for every release."""
    return volume.meta / CURRENT


def view_path(volume: Volume, sequence: int) -> Path:
    return views_dir(volume) / str(sequence)


def link_target(project: str, tree: str) -> str:
    return f"../../store/{project}/{tree}"


def read_view(path: Path) -> dict[str, str]:
    """project -> tree of every link in a view folder that points into the store as a view link should."""
    out: dict[str, str] = {}
    for entry in os.scandir(path):
        if entry.name.startswith("."):
            continue
        try:
            target = os.readlink(entry.path)
        except OSError:
            continue
        tree = tree_of(entry.name, target)
        if tree is not None:
            out[entry.name] = tree
    return out


def tree_of(project: str, target: str) -> str | None:
    prefix = f"../../store/{project}/"
    tree = target.removeprefix(prefix)
    if tree == target or not tree or "/" in tree or tree in (".", ".."):
        return None
    return tree


def current_sequence(volume: Volume) -> int | None:
    """The release `current` points at; None when there is no (well-formed) current link."""
    try:
        target = os.readlink(current_path(volume))
    except OSError:
        return None
    name = target.removeprefix(f"{VIEWS}/")
    return int(name) if name != target and name.isdigit() else None


def current_view(volume: Volume) -> tuple[int, dict[str, str]] | None:
    """(sequence, project -> tree) of the current view, or None when there is none."""
    sequence = current_sequence(volume)
    if sequence is None:
        return None
    try:
        return sequence, read_view(view_path(volume, sequence))
    except OSError:
        return None


def list_views(volume: Volume) -> list[int]:
    try:
        names = [e.name for e in os.scandir(views_dir(volume))]
    except FileNotFoundError:
        return []
    return sorted(int(n) for n in names if n.isdigit())


class TreesMissing(FileNotFoundError):
    """A view names trees the store does not hold: it is not written."""

    def __init__(self, message: str, projects: list[str]) -> None:
        super().__init__(message)
        self.projects = projects


class ViewLog:
    """What this process knows of the views it wrote, so that a spare view is repaired into a new one by the links
    that differ, not by a readlink per project (at 10,000 projects, ~70 ms a change).

    A view holds exactly its release's trees when written; its folder's inode, mtime and ctime are noted then.
    Adding, removing or replacing an entry changes the folder's mtime (a link cannot be retargeted in place), so a
    folder that shows the same three still holds what it was written with: the stat check's trust, applied to a
    folder. With the projects each release changed (from the signed roots the change events carried), the links
    that differ between that view and a later release are those of the projects changed in between. Anything not
    known (a view from before this process, a release read whole from release.json, a folder changed since) is
    repaired as before, a readlink per entry."""

    MAX_NAMES = 1_000  # a release that changed more is not remembered (the first of a chain names every project)
    MAX_RELEASES = 1_000

    def __init__(self) -> None:
        self._marks: dict[int, tuple[int, int, int]] = {}  # sequence -> its folder as written (ino, mtime, ctime)
        self._changes: dict[int, frozenset[str]] = {}  # sequence -> projects the release changed

    def changed(self, sequence: int, projects: Collection[str]) -> None:
        if len(projects) <= self.MAX_NAMES:
            self._changes[sequence] = frozenset(projects)
        while len(self._changes) > self.MAX_RELEASES:
            del self._changes[min(self._changes)]

    def wrote(self, sequence: int, path: Path) -> None:
        self._marks[sequence] = _mark(path)
        while len(self._marks) > self.MAX_RELEASES:  # views retention removed leave their marks behind
            del self._marks[min(self._marks)]
        oldest = min(self._marks)
        for old in [s for s in self._changes if s <= oldest]:
            del self._changes[old]

    def differing(self, sequence: int, path: Path, new: int) -> set[str] | None:
        """The projects whose link may differ between the view `sequence` at `path` and release `new`; None when that
        is not known (read every link then). The view's mark is spent: it is about to be recycled."""
        mark = self._marks.pop(sequence, None)
        try:
            if mark is None or mark != _mark(path):
                return None
        except OSError:
            return None
        names: set[str] = set()
        for between in range(sequence + 1, new + 1):
            changes = self._changes.get(between)
            if changes is None:
                return None
            names |= changes
        return names

    def clear(self) -> None:
        self._marks.clear()
        self._changes.clear()


def _mark(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_ino, st.st_mtime_ns, st.st_ctime_ns


def write_view(volume: Volume, sequence: int, trees: Mapping[str, str], verify: Collection[str] | None = None, *,
               recycle_at: int | None = None, log: ViewLog | None = None) -> None:
    """Make views/<sequence> hold exactly these links (a new view is built aside and renamed in; an existing one
    is repaired link by link), then point `current` at it with one rename. Every tree must be in the store:
    `verify` names the projects whose tree is checked (None: all; the caller saw the others there). `recycle_at`:
    the old views the agent keeps (--keep-views); once there are that many, the oldest is repaired into the new
    view instead (None: never). `log`: what this process knows of its views (ViewLog), kept up to date."""
    missing = volume.missing_trees(trees if verify is None else {p: trees[p] for p in verify if p in trees})
    if missing:
        raise TreesMissing(f"view {sequence}: trees not in the store: {', '.join(missing)}", missing)
    log = log or ViewLog()
    path = view_path(volume, sequence)
    views_dir(volume).mkdir(mode=0o755, parents=True, exist_ok=True)
    if path.is_dir():
        repair_links(path, _targets(trees))
        fsync_dir(path)
    else:
        tmp = volume.staging / f"view-{sequence}-{uuid.uuid4().hex[:8]}"
        recycled, differing = _recycle(volume, tmp, recycle_at, log, sequence) if recycle_at is not None else (
            False, None)
        if not recycled:
            tmp.mkdir(mode=0o755)
            folder = os.fspath(tmp)
            for project, target in _targets(trees).items():
                os.symlink(target, f"{folder}/{project}")
        elif differing is None:
            repair_links(tmp, _targets(trees))
        else:
            repair_known(tmp, trees, differing)
        fsync_dir(tmp)
        os.rename(tmp, path)
        fsync_dir(path.parent)
    log.wrote(sequence, path)
    flip_current(volume, sequence)


def _targets(trees: Mapping[str, str]) -> dict[str, str]:
    return {project: link_target(project, tree) for project, tree in trees.items()}


def _recycle(volume: Volume, tmp: Path, keep: int, log: ViewLog, sequence: int) -> tuple[bool, set[str] | None]:
    """Move the view that retention would remove next to `tmp`, to be repaired into the new one: at 10,000 projects
    a new folder of links costs a second, a repair costs the links that changed. Only once `keep` views besides the
    current one are kept, so no view goes earlier than it would have; under the volume lock (tried once), as
    retention's removals, so no task is reading it (materialize.local_trees). (whether it was moved, the links the
    log knows may differ: ViewLog.differing, None when not known)."""
    current = current_sequence(volume)
    spare = [s for s in list_views(volume) if s != current]
    if not spare or len(spare) < keep:
        return False, None
    with holds.volume_lock(volume, timeout=0) as locked:
        if not locked:
            return False, None
        old = view_path(volume, spare[0])
        differing = log.differing(spare[0], old, sequence)  # before the rename, which may change the folder's times
        try:
            os.rename(old, tmp)
        except OSError:
            return False, None
    return True, differing


def repair_known(folder: Path, trees: Mapping[str, str], names: Collection[str]) -> None:
    """`repair_links` for a folder known to hold the right links but for `names`: each of them is linked to its tree
    in `trees` (one rename) or removed when `trees` has none."""
    for name in sorted(names):
        tree = trees.get(name)
        if tree is None:
            remove_entry(folder / name)
        else:
            replace_link(folder / name, link_target(name, tree))


def repair_links(folder: Path, wanted: Mapping[str, str], keep: frozenset[str] = frozenset()) -> None:
    """Make `folder` hold exactly the links `wanted` (name -> target), besides the names in `keep`: each link that
    differs is replaced with one rename (never missing in between); anything else in the folder is removed. One
    listing and a readlink per entry: what is already right costs no write."""
    have: dict[str, str | None] = {}  # name -> its link's target; None: not a link (or gone while read)
    for entry in os.scandir(folder):
        if entry.name in keep:
            continue
        if entry.name not in wanted:
            remove_entry(Path(entry.path))
            continue
        try:
            have[entry.name] = os.readlink(entry.path) if entry.is_symlink() else None
        except OSError:
            have[entry.name] = None
    for name, want in sorted(wanted.items()):
        if have.get(name) == want:
            continue
        link = folder / name
        if name in have and have[name] is None:
            remove_entry(link)
        replace_link(link, want)


def replace_link(link: Path, target: str) -> None:
    """Point `link` at `target` with one rename of a temporary link beside it."""
    tmp = link.with_name(f"{TMP_PREFIX}{link.name}-{uuid.uuid4().hex[:8]}")
    os.symlink(target, tmp)
    os.replace(tmp, link)


def remove_entry(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def flip_current(volume: Volume, sequence: int) -> None:
    link = current_path(volume)
    want = f"{VIEWS}/{sequence}"
    with contextlib.suppress(OSError):
        if os.readlink(link) == want:
            return
    if os.path.lexists(link) and not link.is_symlink():
        raise IsADirectoryError(f"{link} is not a symlink; dagsync will not replace it")
    replace_link(link, want)
    fsync_dir(volume.meta)


def remove_view(volume: Volume, sequence: int) -> None:
    """Rename the view out of views/ (atomic), then delete its links. Never the current one."""
    if sequence == current_sequence(volume):
        return
    path = view_path(volume, sequence)
    if not path.is_dir():
        return
    volume.discard(path)


def clear_temp(volume: Volume) -> int:
    """Start-up repair: a temporary `current` link or view link left behind by a crash mid-flip."""
    count = 0
    for parent in (volume.meta, *(view_path(volume, s) for s in list_views(volume))):
        for entry in os.scandir(parent):
            if entry.name.startswith(TMP_PREFIX) and entry.is_symlink():
                os.unlink(entry.path)
                count += 1
    return count
