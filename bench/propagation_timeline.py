"""Where a change's propagation time goes: bench/propagation.py's run, with a timeline of each change.

    python -m bench.propagation_timeline --projects 10 10000 --changes 30

A profiling aid, not a benchmark (nothing goes into docs/benchmarks.md): the validator runs in this process
(bench/propagation.py's Stack), so its steps are timed by wrapping them here. For each change, ms after the manifest
PUT returned: the validator's read of manifest.yaml done, the change event published (SNS), the host's link flipped.
The host's part is the last minus the one before; the validator's, the announcement minus the manifest read. Also
the validator's own time per step (a sum per change, median over the changes). Found the validator's O(projects)
loops that bench/findings.md section 10 removed."""

from __future__ import annotations

import argparse
import functools
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import propagation
from dagsync.core import history, keys, releases
from dagsync.core.store import S3Store
from dagsync.gate import validator as gate
from dagsync.lambdas import validator as handler

MARKS = ("manifest read", "announced", "flipped")
STEPS: tuple[tuple[Any, str], ...] = (
    (gate.Validator, "_previous"), (gate.Validator, "_check"), (gate.Validator, "_resolve"),
    (gate.Validator, "_resolve_one"), (gate.Validator, "_newest"), (releases, "draft"), (releases, "write"),
    (gate, "load_yaml"), (history, "record"),
)


class Timeline:
    def __init__(self) -> None:
        self.marks: dict[str, float] = {}
        self.steps: defaultdict[str, float] = defaultdict(float)
        self.rows: list[dict[str, float]] = []
        self.step_rows: list[defaultdict[str, float]] = []

    def mark(self, name: str) -> None:
        self.marks.setdefault(name, time.perf_counter())

    def timed(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.steps[name] += time.perf_counter() - start
        return wrapper

    def close(self, written: float, flipped: float) -> None:
        row = {name: (t - written) * 1000 for name, t in self.marks.items()}
        row["flipped"] = (flipped - written) * 1000
        self.rows.append(row)
        self.step_rows.append(self.steps)
        self.marks, self.steps = {}, defaultdict(float)


@contextmanager
def instrumented(timeline: Timeline) -> Iterator[None]:
    """The validator's steps timed and the marks taken, for as long as the context lasts."""
    saved: list[tuple[Any, str, Any]] = []

    def patch(owner: Any, name: str, new: Any) -> None:
        saved.append((owner, name, owner.__dict__[name]))
        setattr(owner, name, new)

    get, announce, wait_all = S3Store.get, handler.Runtime.announce, propagation.wait_all

    def get_marked(store: S3Store, key: str, **kwargs: Any) -> Any:
        blob = get(store, key, **kwargs)
        if key == keys.MANIFEST_KEY:
            timeline.mark("manifest read")
        return blob

    def announce_marked(runtime: Any, event: Any) -> None:
        timeline.mark("announced")
        announce(runtime, event)

    def wait_marked(dirs: Any, project: str, sha12: str, written: float, timeout: float = 60.0) -> dict[str, float]:
        if timeout != 60.0:  # the cold sync before the changes
            return wait_all(dirs, project, sha12, written, timeout)
        timeline.marks, timeline.steps = {}, defaultdict(float)  # what happened before this change's PUT returned
        arrived = wait_all(dirs, project, sha12, written, timeout)
        timeline.close(written, written + max(arrived.values()))
        return arrived

    patch(S3Store, "get", get_marked)
    patch(handler.Runtime, "announce", announce_marked)
    patch(propagation, "wait_all", wait_marked)
    for owner, name in STEPS:
        patch(owner, name, timeline.timed(name, owner.__dict__[name]))
    try:
        yield
    finally:
        for owner, name, original in reversed(saved):
            setattr(owner, name, original)


def report(projects: int, timeline: Timeline) -> None:
    print(f"{projects} projects, {len(timeline.rows)} changes: medians, ms after the manifest PUT returned")
    for name in MARKS:
        values = [row[name] for row in timeline.rows if name in row]
        if values:
            print(f"  {name:<14} {statistics.median(values):8.1f}")
    print("  the validator's steps (each change's sum; nested steps are inside their callers):")
    for name in sorted({n for steps in timeline.step_rows for n in steps}):
        print(f"    {name:<14} {statistics.median([s[name] * 1000 for s in timeline.step_rows]):8.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, nargs="+", default=[propagation.PROJECTS])
    parser.add_argument("--changes", type=int, default=30)
    args = parser.parse_args(argv)
    for projects in args.projects:
        timeline = Timeline()
        work = Path(tempfile.mkdtemp(prefix="dagsync-bench-timeline-"))
        try:
            with instrumented(timeline):
                propagation.run(1, args.changes, work, projects=projects)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        report(projects, timeline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
