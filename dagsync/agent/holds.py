"""Holds: how a task pinned to an old release keeps its trees in the store while it runs.

    .dagsync/volume.lock                      exclusive flock: the agent's retention and a bundle materializing
    .dagsync/holds/<sequence>-<sha12>.json    {"sequence": N, "trees": {project: tree}}; each process using
                                              release N keeps a shared flock on it for as long as it uses N

The Airflow bundle takes the volume lock, writes (or finds) the hold file, takes its shared flock and only then
looks for the trees, so the agent can never delete a tree between that look and the task's first import. The
agent's retention takes the volume lock without waiting (it skips a cycle rather than stall a sync), asks every
hold file for an exclusive flock without waiting: a file it cannot lock is held, and its trees are kept; a file
it can lock is held by nobody, and it is deleted. A flock ends with the process that took it, so a task killed
with SIGKILL releases its hold too."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

from dagsync.core.archive import write_atomic

from .volume import TMP_PREFIX, Volume

LOCK_FILE = "volume.lock"
HOLDS = "holds"


class HoldUnreadable(ValueError):
    """A held hold file whose content cannot be read: which trees it keeps is unknown."""


def holds_dir(volume: Volume) -> Path:
    return volume.meta / HOLDS


@contextlib.contextmanager
def volume_lock(volume: Volume, *, timeout: float | None, poll: float = 0.05) -> Iterator[bool]:
    """The volume's exclusive lock. timeout None waits as long as it takes; 0 tries once. Yields whether it was
    taken (the body runs either way: check the value)."""
    volume.meta.mkdir(mode=0o755, parents=True, exist_ok=True)
    fd = os.open(volume.meta / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        got = _flock(fd, fcntl.LOCK_EX, timeout, poll)
        try:
            yield got
        finally:
            if got:
                fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _flock(fd: int, kind: int, timeout: float | None, poll: float) -> bool:
    if timeout is None:
        fcntl.flock(fd, kind)
        return True
    deadline = time.monotonic() + timeout
    wait = threading.Event().wait
    while True:
        try:
            fcntl.flock(fd, kind | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            wait(poll)


def hold_name(sequence: int, trees: Mapping[str, str]) -> str:
    body = json.dumps(dict(sorted(trees.items())), separators=(",", ":")).encode()
    return f"{sequence}-{hashlib.sha256(body).hexdigest()[:12]}.json"


def hold(volume: Volume, sequence: int, trees: Mapping[str, str]) -> int:
    """Take a shared hold on release `sequence`'s trees; returns the file descriptor that carries it (close it to
    let go). Call it under volume_lock."""
    folder = holds_dir(volume)
    folder.mkdir(mode=0o755, parents=True, exist_ok=True)
    path = folder / hold_name(sequence, trees)
    data = json.dumps({"sequence": sequence, "trees": dict(sorted(trees.items()))}, indent=1).encode()
    while True:
        if not path.exists():
            write_atomic(path, data, tmp=folder / f"{TMP_PREFIX}{uuid.uuid4().hex[:8]}")
        fd = os.open(path, os.O_RDONLY)
        fcntl.flock(fd, fcntl.LOCK_SH)
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the agent deleted the file between our open and our lock: make it again


def held_trees(volume: Volume) -> set[tuple[str, str]]:
    """(project, tree) of every held hold file; hold files nobody holds are deleted. Call it under volume_lock.
    Raises HoldUnreadable when a held file cannot be read (then nothing may be deleted)."""
    folder = holds_dir(volume)
    if not folder.is_dir():
        return set()
    kept: set[tuple[str, str]] = set()
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.name.startswith(TMP_PREFIX):
            os.unlink(entry.path)  # a hold write cut short; nobody holds a temp file
            continue
        fd = os.open(entry.path, os.O_RDONLY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                kept |= _trees(fd, entry.name)
                continue
            os.unlink(entry.path)
        finally:
            os.close(fd)
    return kept


def _trees(fd: int, name: str) -> set[tuple[str, str]]:
    with os.fdopen(os.dup(fd), "rb") as fh:
        raw = fh.read()
    try:
        trees = json.loads(raw)["trees"]
        return {(str(p), str(t)) for p, t in trees.items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise HoldUnreadable(f"hold file {name} is held but unreadable") from None
