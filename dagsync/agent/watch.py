"""What changed on the volume since the agent last looked: inotify (through ctypes) on its folders.

At 10,000 projects a full reconcile that looks at everything costs 10,000 readlinks, 10,000 folder listings and
110,000 lstat calls. With a watch on a folder, the agent re-reads only the entries an event named; with a watch on
every folder of a store tree, it skips the stat check of a tree that had no event since it was last checked, and
hashes a tree that had one (an edit that kept size and mtime, which a stat check cannot see, is then caught at the
next reconcile rather than at the next deep cycle). A path is watched before it is read, so a change made while
reading it is reported next time. Where inotify is missing (not Linux), refused (fs.inotify.max_user_watches) or
loses events (a queue overflow), the path counts as unknown and is read whole, as before; a network filesystem
changed from another machine sends no events, which is why the periodic deep cycle still reads everything and
hashes every tree. See docs/agent.md, "Drift checks"."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import struct
import weakref
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

IN_MODIFY, IN_ATTRIB, IN_MOVED_FROM, IN_MOVED_TO = 0x2, 0x4, 0x40, 0x80
IN_CREATE, IN_DELETE, IN_DELETE_SELF, IN_MOVE_SELF = 0x100, 0x200, 0x400, 0x800
IN_Q_OVERFLOW, IN_IGNORED, IN_ONLYDIR = 0x4000, 0x8000, 0x01000000
IN_NONBLOCK, IN_CLOEXEC = 0o4000, 0o2000000
MASK = (IN_MODIFY | IN_ATTRIB | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_DELETE_SELF
        | IN_MOVE_SELF | IN_ONLYDIR)
_HEADER = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then len bytes of name)
PYCACHE = "__pycache__"
_PYCACHE = PYCACHE.encode()
NO_NAMES: frozenset[str] = frozenset()  # shared by every quiet folder until an event names something


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.inotify_init1  # noqa: B018 (missing where there is no inotify)
    except (OSError, AttributeError):
        return None
    return libc


@dataclass(slots=True)  # one or two per project: at 10,000 projects, every byte counts 20,000 times
class _Watched:
    wds: tuple[int, ...]  # a tuple: a list of one or two takes twice the memory, 20,000 times at 10,000 projects
    tree: bool  # every folder below, and any event marks it touched; else one folder, and events name entries
    touched: bool = False
    names: AbstractSet[str] | None = NO_NAMES  # entries named by events since `take`; None: unknown


class Watch:
    def __init__(self) -> None:
        self._libc = _libc()
        self._fd = self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC) if self._libc is not None else -1
        # inotify instances are few (fs.inotify.max_user_instances, 128 by default): give this one back with the
        # object, not only on close() (tests and tools make many Syncers in one process)
        self._closer = weakref.finalize(self, os.close, self._fd) if self._fd >= 0 else None
        self._paths: dict[str, _Watched] = {}
        self._wds: dict[int, str] = {}
        self.seen = 0  # events on watched paths (and overflows) so far: unchanged means nothing happened
        self.misses = 0  # paths that could not be watched so far

    @classmethod
    def unavailable(cls) -> Watch:
        """A watch that sees nothing: every path is read whole, every tree checked."""
        watch = cls()
        watch.close()
        return watch

    @property
    def available(self) -> bool:
        return self._fd >= 0

    def watch_tree(self, path: str) -> None:
        """Watch every folder of a store tree (again), as untouched; call it before checking the tree. A folder
        that cannot be watched leaves the tree unwatched: it is then checked every cycle."""
        self.forget(path)
        wds: list[int] = []
        for dirpath, dirnames, _ in os.walk(path):
            dirnames[:] = [d for d in dirnames if d != PYCACHE]
            wd = self._add(dirpath)
            if wd < 0:
                self._drop(wds)
                return
            wds.append(wd)
        # a tree's events mark it touched, name nothing
        self._remember(path, _Watched(tuple(wds), tree=True, names=None))

    def changed(self, path: str) -> bool:
        """A tree: not watched, or an event since watch_tree (drain first)."""
        watched = self._paths.get(path)
        return watched is None or watched.touched

    def touched(self, path: str) -> bool:
        """A tree: watched, and an event in it since watch_tree (drain first)."""
        watched = self._paths.get(path)
        return watched is not None and watched.touched

    def watching(self, path: str) -> bool:
        return path in self._paths

    def take(self, folder: str) -> AbstractSet[str] | None:
        """The entries of a folder that events named since the last take (drain first); None when that is not
        known: the folder was not watched (it is from now on, if it can be) or events were lost. Read it whole
        then."""
        watched = self._paths.get(folder)
        if watched is not None and watched.names is not None:
            names, watched.names = watched.names, NO_NAMES  # the watch keeps no hold on what it hands over
            return names
        self.forget(folder)
        wd = self._add(folder)
        if wd >= 0:
            self._remember(folder, _Watched((wd,), tree=False))
        return None

    def forget(self, path: str) -> None:
        watched = self._paths.pop(path, None)
        if watched is not None:
            self._drop(watched.wds)

    def keep(self, paths: Iterable[str], under: str) -> None:
        """Forget every watched path below `under` but these (trees and folders that left the store)."""
        wanted, prefix = set(paths), under.rstrip("/") + "/"
        for path in [p for p in self._paths if p.startswith(prefix) and p not in wanted]:
            self.forget(path)

    def drain(self) -> None:
        """Read every pending event into the paths it concerns."""
        while self.available:
            try:
                data = os.read(self._fd, 64 * 1024)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno != errno.EINTR:
                    raise
                continue
            self._handle(data)

    def _handle(self, data: bytes) -> None:
        offset = 0
        while offset < len(data):
            wd, mask, _, size = _HEADER.unpack_from(data, offset)
            name = data[offset + _HEADER.size: offset + _HEADER.size + size].rstrip(b"\0")
            offset += _HEADER.size + size
            if mask & IN_Q_OVERFLOW:  # events were lost: every tree is hashed and every folder read once
                self.seen += 1
                for each in self._paths.values():
                    each.touched, each.names = True, None
                continue
            path = self._wds.get(wd)
            watched = self._paths.get(path) if path is not None else None
            if watched is None or (watched.tree and name == _PYCACHE):
                continue  # Airflow's parser writing bytecode beside a DAG file: not the tree's content (volume.py)
            self.seen += 1
            watched.touched = True
            if mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF) or not name:
                watched.names = None  # the folder itself went or changed: read it whole
            elif isinstance(watched.names, set):
                watched.names.add(os.fsdecode(name))
            elif watched.names is not None:  # NO_NAMES: the first name since the last take
                watched.names = {os.fsdecode(name)}

    def _add(self, path: str) -> int:
        if self._libc is None or not self.available:
            return -1
        wd: int = self._libc.inotify_add_watch(self._fd, os.fsencode(path), MASK)
        self.misses += wd < 0
        return wd

    def _remember(self, path: str, watched: _Watched) -> None:
        self._paths[path] = watched
        for wd in watched.wds:
            self._wds[wd] = path

    def _drop(self, wds: Iterable[int]) -> None:
        for wd in wds:
            self._wds.pop(wd, None)
            if self._libc is not None and self.available:
                self._libc.inotify_rm_watch(self._fd, wd)

    def close(self) -> None:
        """Stop watching: every path counts as unknown from now on."""
        if self._closer is not None:
            self._closer()
        self._fd = -1
        self._paths.clear()
        self._wds.clear()
