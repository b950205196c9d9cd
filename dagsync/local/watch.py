"""A reader of a host's DAG folder that fails loudly on a torn view: used by `make demo` and the e2e tests.

It reads each project link the way Airflow's parser would and compares what it finds with every tree that was
published: a project that must be there and is not, a link that leads outside the store or to nothing, or a tree
that matches no published tree (half-written, mixed, foreign) is a violation."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Collection, Mapping
from pathlib import Path

Tree = frozenset[tuple[str, str]]  # (relative path, sha256) of every file

STORE = ".dagsync/store"  # where the agent's links lead: <dags>/<project> -> .dagsync/store/<project>/<tree>
SKIPPED = "__pycache__"  # what Airflow's parser leaves behind in a tree it read


def tree_files(root: Path) -> Tree:
    """(relative path, sha256) of every file below root, skipping what Airflow's parser leaves behind."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != SKIPPED]
        for name in filenames:
            path = Path(dirpath, name)
            out.add((path.relative_to(root).as_posix(), hashlib.sha256(path.read_bytes()).hexdigest()))
    return frozenset(out)


def folder_problems(dags_dir: Path, published: Mapping[str, Collection[Tree]],
                    must_exist: Collection[str]) -> list[str]:
    """What is wrong with the DAG folder right now, for each project in `published` (project -> every tree
    published for it): missing although it must exist, a link pointing outside the store or at a missing tree,
    or a tree that matches no published one. Raises FileNotFoundError if a tree vanishes while it is read."""
    problems: list[str] = []
    for project, valid in list(published.items()):
        try:
            target = os.readlink(dags_dir / project)  # one read of the link: it may be replaced right after
        except FileNotFoundError:
            if project in must_exist:
                problems.append(f"{project}: missing")
            continue
        except OSError:
            problems.append(f"{project}: not a symlink")
            continue
        tree = dags_dir / target
        if os.path.isabs(target) or not target.startswith(f"{STORE}/{project}/"):
            problems.append(f"{project}: link points at {target!r}")
        elif not tree.is_dir():
            problems.append(f"{project}: link to a missing tree {target}")
        elif tree_files(tree) not in valid:
            problems.append(f"{project}: {target} matches no published tree")
    return problems


class Watcher(threading.Thread):
    """Checks a DAG folder in a loop, as a parser would, and records every violation it sees.

    `published` (project -> trees) and `must_exist` are read on every scan: the caller adds a tree before it
    publishes it, adds a project to `must_exist` once it is live, and removes it before retiring it."""

    def __init__(self, dags_dir: Path, published: dict[str, set[Tree]] | None = None,
                 must_exist: set[str] | None = None, *, interval: float = 0.001) -> None:
        super().__init__(daemon=True)
        self.dags_dir = dags_dir
        self.published: dict[str, set[Tree]] = {} if published is None else published
        self.must_exist: set[str] = set() if must_exist is None else must_exist
        self.interval = interval
        self.scans = 0
        self.violations: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                self.violations.extend(folder_problems(self.dags_dir, self.published, set(self.must_exist)))
            except FileNotFoundError as exc:  # a tree vanished while it was read: a parser would fail too
                self.violations.append(f"vanished while reading: {exc.filename}")
            self.scans += 1
            self.halt.wait(self.interval)

    def finish(self, timeout: float = 30.0) -> list[str]:
        """Stop after the current scan; returns the violations seen."""
        self.halt.set()
        self.join(timeout)
        return self.violations
