"""A pinned release on a worker: make release N available at a folder, from the host's store when it holds the trees,
otherwise from the bucket with the agent's own code. No Airflow import here (tested without Airflow).

    <dag_bundle_storage_path>/<bundle>/versions/<N>/                 a real folder (Airflow's stale-version cleanup
        .dagsync-release.json  {"sequence": N, "trees": {...}}       rmtree's it, and fails on a symlink or a missing
        <project> -> <dags_dir>/.dagsync/store/<project>/<tree>      folder); rmtree removes links, never the store

Everything happens under the volume lock (holds.py), so concurrent tasks on a host share one download, and the
agent's retention cannot delete a tree between the look and the hold that keeps it. The hold (a shared flock) is
returned to the caller, who keeps it for as long as the task runs."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from dagsync.agent import holds, views
from dagsync.agent.fetch import describe, fetch_tree
from dagsync.agent.volume import Volume
from dagsync.core import keys, releases
from dagsync.core.models import ReleasedProject
from dagsync.core.store import ObjectStore

MARKER = ".dagsync-release.json"
TMP_PREFIX = ".tmp-"


class Unavailable(RuntimeError):
    """Release N cannot be made available on this host now; the message says why."""


@dataclass(frozen=True)
class Remote:
    """Where a worker reads a release it does not hold. Made on first use: the DAG processor never needs it."""

    store: ObjectStore
    verifier: releases.Verifier


@dataclass(frozen=True)
class Materialized:
    trees: dict[str, str]  # project -> tree
    hold: int  # the file descriptor that carries the hold: close it to let the agent's retention have the trees
    fetched: tuple[str, ...] = ()  # projects whose tree came from the bucket


def materialize(volume: Volume, target: Path, sequence: int, remote: Callable[[], Remote], *,
                lock_timeout: float) -> Materialized:
    """Release `sequence` at `target`. Raises Unavailable when it cannot be done (bucket unreachable, release not in
    the history, an archive that fails its checksum or the safe extractor, the lock not taken in time, a volume or
    storage folder this process cannot write)."""
    try:
        return _materialize(volume, target, sequence, remote, lock_timeout)
    except OSError as exc:
        raise Unavailable(f"release {sequence}: {describe(exc)} (the task needs write access to {volume.meta} and "
                          f"{target.parent})") from None


def _materialize(volume: Volume, target: Path, sequence: int, remote: Callable[[], Remote],
                 lock_timeout: float) -> Materialized:
    volume.ensure_layout()
    with holds.volume_lock(volume, timeout=lock_timeout) as locked:
        if not locked:
            raise Unavailable(f"release {sequence}: another task kept {volume.meta / holds.LOCK_FILE} locked for "
                              f"{lock_timeout:.0f} s while materializing a release")
        entries: dict[str, ReleasedProject] | None = None
        trees = local_trees(volume, target, sequence)
        if trees is None:
            entries = read_entries(remote, sequence)
            trees = {p: e.tree_name for p, e in entries.items()}
        hold = holds.hold(volume, sequence, trees)
        try:
            fetched: list[str] = []
            missing = volume.missing_trees(trees)
            if missing:
                if entries is None:
                    entries = read_entries(remote, sequence)
                    named = {p: e.tree_name for p, e in entries.items()}
                    if named != trees:  # what this host had recorded is not release N (a redeployed bucket)
                        os.close(hold)
                        trees, hold = named, holds.hold(volume, sequence, named)
                        missing = volume.missing_trees(trees)
                store = remote().store
                for project in missing:
                    try:
                        fetch_tree(store, volume, project, entries[project])
                    except Exception as exc:
                        raise Unavailable(f"release {sequence}: project {project}: {describe(exc)}") from None
                    fetched.append(project)
            link_version(volume, target, sequence, trees)
        except BaseException:
            os.close(hold)
            raise
    return Materialized(trees=trees, hold=hold, fetched=tuple(fetched))


def local_trees(volume: Volume, target: Path, sequence: int) -> dict[str, str] | None:
    """What this host already knows release `sequence` to be: the marker of a version folder made before, or the
    agent's release view; None when neither is there (then the bucket says)."""
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError, AttributeError):
        data = json.loads((target / MARKER).read_bytes())
        if data["sequence"] == sequence:
            return {str(p): str(t) for p, t in data["trees"].items()}
    path = views.view_path(volume, sequence)
    if path.is_dir():
        with contextlib.suppress(OSError):
            return views.read_view(path)
    return None


def read_entries(remote: Callable[[], Remote], sequence: int) -> dict[str, ReleasedProject]:
    """Release `sequence` from the bucket: its root from the history (or release.json, if it is the newest and its
    history entry is not written yet), verified, and its shards."""
    try:
        source = remote()
        stored = releases.read_root_at(source.store, source.verifier, sequence)
        if stored is None:
            raise Unavailable(f"release {sequence} is not in the bucket: {keys.release_key(sequence)} is missing "
                              "(expired from the release history, or from another bucket)")
        return releases.load_shards(source.store, stored.root, releases.ShardCache())
    except Unavailable:
        raise
    except Exception as exc:
        raise Unavailable(f"release {sequence} could not be read from the bucket: {describe(exc)}") from None


def link_version(volume: Volume, target: Path, sequence: int, trees: Mapping[str, str]) -> None:
    """`target` as a real folder holding one absolute link per project into the store, plus the marker. A new folder
    is built aside and renamed in; an existing one is repaired link by link, so it never goes missing."""
    target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    for entry in os.scandir(target.parent):  # leftovers of a build cut short (we hold the volume lock)
        if entry.name.startswith(TMP_PREFIX):
            shutil.rmtree(entry.path, ignore_errors=True)
    marker = json.dumps({"sequence": sequence, "trees": dict(sorted(trees.items()))}, indent=1).encode()
    if os.path.lexists(target) and not (target.is_dir() and not target.is_symlink()):
        views.remove_entry(target)  # a link or a file where Airflow expects a folder
    if not target.exists():
        tmp = target.parent / f"{TMP_PREFIX}{sequence}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(mode=0o755)
        for project, tree in sorted(trees.items()):
            os.symlink(os.fspath(volume.tree_path(project, tree)), tmp / project)
        (tmp / MARKER).write_bytes(marker)
        os.rename(tmp, target)
        return
    views.repair_links(target, {p: os.fspath(volume.tree_path(p, t)) for p, t in trees.items()},
                       keep=frozenset({MARKER}))
    tmp_marker = target / f"{TMP_PREFIX}{MARKER}"
    tmp_marker.write_bytes(marker)
    os.replace(tmp_marker, target / MARKER)
