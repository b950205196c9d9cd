"""Publish -> Airflow has it: a real Airflow 3.3.2 `airflow dag-processor` on the folder a real `dagsync-agent run`
keeps (on `dagsync local up`), the classic setup and DagsyncBundle side by side in one run.

Two Airflow homes (each its own sqlite DB from `airflow db migrate`, venv under .cache/) read one host folder:
*classic* is Airflow's default `dags-folder` bundle on `<dags_dir>` with every setting at its default; *bundle* is
DagsyncBundle with the settings docs/airflow.md documents. Each change is timed from the start of the publisher
call (upload + manifest write; `publish --promote`, `rollback`, `retire`) until the host folder has it and until
each metadata DB shows it: a new project's DAG registered (known, not stale); a changed or rolled-back one's new
serialized DAG (its tag); a retired one's DAG stale. Every change is on its own project; a rollback returns to a
tree extracted before the DAG processors started (old mtimes). `--changes` slots, `--spacing` seconds each, hold
one change of every kind; the next change waits only for the bundle side, and each is given `--classic-wait`
seconds to show in the classic setup. The DAG processors' CPU (their parsing children included) is taken over
the same window.

    python -m bench.airflow_e2e --out airflow_e2e          (make bench: 10 of each kind, 30 s slots, ~13 minutes)
    python -m bench.airflow_e2e --changes 2 --spacing 12 --settle 0 --classic-wait 30 --out airflow_e2e
                                                           (make bench-quick, ~2 minutes)
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench.common import write_result
from dagsync.core.aws import AwsSettings
from dagsync.core.store import S3Store
from dagsync.local.airflow import (
    BUNDLE_NAME,
    BUNDLE_SETTINGS,
    AirflowHome,
    MetadataDB,
    bundle_settings,
    classic_settings,
    ensure_airflow,
)
from dagsync.local.procs import Process, running, start_agent, start_local_stack, wait_for
from dagsync.publish.publisher import publish, retire
from dagsync.publish.workflow import rollback

KINDS = ("new", "changed", "rolled back", "retired")
SIDES = ("classic", "bundle")
DAG = '''"""{project}: generated for bench/airflow_e2e.py."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task


@dag(dag_id="{project}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False,
     tags=["{tag}"])
def pipeline() -> None:
    @task
    def run() -> str:
        return "{tag}"

    run()


pipeline()
'''


@dataclass
class Change:
    kind: str
    project: str
    shows: Callable[[MetadataDB], bool]  # the metadata DB has it
    on_host: Callable[[], bool]  # the host folder has it
    write: Callable[[], object]  # the publisher call
    started: float = 0.0
    seen: dict[str, float] = field(default_factory=dict)  # "publisher call", "host" or a side -> seconds


def registered(project: str) -> Callable[[MetadataDB], bool]:
    return lambda db: db.registered(project)


def tagged(project: str, version: str, gone: str) -> Callable[[MetadataDB], bool]:
    def shows(db: MetadataDB) -> bool:
        data = db.serialized(project)
        return f'"{project}-{version}"' in data and f'"{project}-{gone}"' not in data

    return shows


def stale(project: str) -> Callable[[MetadataDB], bool]:
    return lambda db: db.stale(project)


def linked(dags: Path, project: str, version: str | None) -> Callable[[], bool]:
    """The host folder's link for the project points at that version's tree (None: the link is gone)."""

    def check() -> bool:
        try:
            target = os.readlink(dags / project)
        except OSError:
            return version is None
        return version is not None and target.rsplit("/", 1)[-1].startswith(f"{version}-")

    return check


class Watch(threading.Thread):
    """Polls the host folder and both metadata DBs every 20 ms; records when each change first shows in each."""

    def __init__(self, dbs: dict[str, MetadataDB]) -> None:
        super().__init__(name="watch", daemon=True)
        self.dbs = dbs
        self.changes: list[Change] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def add(self, change: Change) -> None:
        with self.lock:
            self.changes.append(change)

    def pending(self, side: str) -> list[Change]:
        with self.lock:
            return [c for c in self.changes if side not in c.seen]

    def run(self) -> None:
        while not self.stop.wait(0.02):
            for change in self.pending("host"):
                if change.on_host():
                    change.seen["host"] = time.perf_counter() - change.started
            for side, db in self.dbs.items():
                for change in self.pending(side):
                    if change.shows(db):
                        change.seen[side] = time.perf_counter() - change.started


def cpu_seconds(proc: Process) -> float:
    t = psutil.Process(proc.popen.pid).cpu_times()
    return float(t.user + t.system + t.children_user + t.children_system)


def summary(values: list[float | None]) -> dict[str, Any]:
    """p50 and max, a change that never showed (None) counting as slower than every one that did; None when the
    figure is one of those."""
    seen = sorted(v for v in values if v is not None)
    n = len(values)

    def at(k: int) -> float | None:
        return seen[k] if k < len(seen) else None

    if n % 2:
        p50 = at(n // 2)
    else:
        lo, hi = at(n // 2 - 1), at(n // 2)
        p50 = None if lo is None or hi is None else statistics.mean((lo, hi))
    return {"n": n, "missed": n - len(seen), "p50": p50 if n else None, "max": at(n - 1) if n else None,
            "min": seen[0] if seen else None, "values": values}


class Run:
    """One host (agent on `dagsync local up`), one publisher, two DAG processors reading the host."""

    def __init__(self, store: S3Store, work: Path, dags: Path) -> None:
        self.store, self.src, self.dags = store, work / "src", dags

    def put(self, project: str, version: str) -> object:
        folder = self.src / project / version
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{project}.py").write_text(DAG.format(project=project, tag=f"{project}-{version}"))
        return publish(self.store, project, version, folder, promote_now=True, published_by="bench")

    def setup(self, changes: int) -> list[str]:
        """Projects to change, to roll back (already at 2, with 1 in the store) and to retire; all live."""
        base = [f"{kind}{i:02d}" for kind in ("chg", "rb", "ret") for i in range(changes)]
        for project in base:
            self.put(project, "1")
        for i in range(changes):
            self.put(f"rb{i:02d}", "2")
        assert wait_for(lambda: all(linked(self.dags, p, "2" if p.startswith("rb") else "1")() for p in base),
                        timeout=120), self.dags
        return base

    def slot(self, i: int) -> list[Change]:
        """One change of each kind, each on its own project."""
        new, chg, rb, ret = f"new{i:02d}", f"chg{i:02d}", f"rb{i:02d}", f"ret{i:02d}"
        return [
            Change("new", new, registered(new), linked(self.dags, new, "1"), lambda: self.put(new, "1")),
            Change("changed", chg, tagged(chg, "2", gone="1"), linked(self.dags, chg, "2"), lambda: self.put(chg, "2")),
            Change("rolled back", rb, tagged(rb, "1", gone="2"), linked(self.dags, rb, "1"),
                   lambda: rollback(self.store, rb)),
            Change("retired", ret, stale(ret), linked(self.dags, ret, None), lambda: retire(self.store, ret)),
        ]


def run(changes: int, spacing: float, settle: float, classic_wait: float, bundle_wait: float) -> dict[str, Any]:
    python = ensure_airflow(say=True)
    work = Path(tempfile.mkdtemp(prefix="dagsync-airflow-e2e-"))
    dags = work / "host-1" / "dags"
    with open(work / "local-stack.log", "w") as log:
        stack = start_local_stack(hosts=1, log=log)
        agent = start_agent(stack, "host-1", dags, log_path=work / "agent.log")
        with running(stack, agent):
            store = S3Store(AwsSettings(region="us-east-1", endpoint_url=stack.endpoint_url).client("s3"),
                            stack.bucket)
            bench = Run(store, work, dags)
            base = bench.setup(changes)
            homes = {"classic": AirflowHome(python, work / "classic", classic_settings(dags)),
                     "bundle": AirflowHome(python, work / "bundle", bundle_settings(dags, work / "bundle",
                                                                      trusted_keys=Path(stack.trusted_keys_file)))}
            for home in homes.values():
                home.migrate()
            procs = {side: home.start_dag_processor() for side, home in homes.items()}
            with running(*procs.values()):
                dbs = {side: home.db for side, home in homes.items()}
                assert wait_for(lambda: all(registered(p)(db) for p in base for db in dbs.values()), timeout=300), \
                    work
                print(f"both DAG processors have the {len(base)} projects; settling {settle:.0f} s", flush=True)
                threading.Event().wait(settle)
                result = measure(bench, changes, dbs, procs, spacing, classic_wait, bundle_wait)
    result.update(changes=changes, spacing=spacing, settle=settle, classic_wait=classic_wait, work=str(work),
                  settings={"classic": "Airflow defaults, `dags-folder` bundle on the host folder",
                            "bundle": {"dag_bundle_config_list": [{"name": BUNDLE_NAME,
                                                                   "classpath": "dagsync.airflow.DagsyncBundle",
                                                                   "kwargs": {"dags_dir": "<dags_dir>"}}],
                                       **BUNDLE_SETTINGS}})
    return result


def measure(bench: Run, changes: int, dbs: dict[str, MetadataDB], procs: dict[str, Process], spacing: float,
            classic_wait: float, bundle_wait: float) -> dict[str, Any]:
    """`changes` slots, `spacing` seconds apart, each one change of every kind a quarter of a slot apart."""
    watch = Watch(dbs)
    watch.start()
    cpu0 = {side: cpu_seconds(p) for side, p in procs.items()}
    wall0 = time.perf_counter()
    done: list[Change] = []
    for i in range(changes):
        for change in bench.slot(i):
            change.started = time.perf_counter()
            watch.add(change)
            change.write()
            change.seen["publisher call"] = time.perf_counter() - change.started
            done.append(change)
            wait_for(lambda change=change: "bundle" in change.seen, timeout=bundle_wait, interval=0.02)
            got = {k: change.seen.get(k, float("nan")) for k in ("publisher call", "host", *SIDES)}
            print(f"  {change.kind:12} {change.project}: publisher call {got['publisher call']:5.2f} s, host "
                  f"{got['host']:5.2f} s, bundle {got['bundle']:5.2f} s, classic {got['classic']:6.2f} s", flush=True)
            threading.Event().wait(max(0.0, change.started + spacing / len(KINDS) - time.perf_counter()))
    for change in done:  # the classic side: each change gets classic_wait seconds from its own start
        wait_for(lambda change=change: "classic" in change.seen, interval=0.1,
                 timeout=max(0.0, change.started + classic_wait - time.perf_counter()))
    watch.stop.set()
    watch.join()
    wall = time.perf_counter() - wall0
    cpu = {side: {"cpu_seconds": cpu_seconds(p) - cpu0[side], "wall_seconds": wall} for side, p in procs.items()}
    for c in cpu.values():
        c["percent_of_a_core"] = 100 * c["cpu_seconds"] / c["wall_seconds"]
    kinds = {kind: {side: summary([c.seen.get(side) for c in done if c.kind == kind])
                    for side in ("publisher call", "host", *SIDES)} for kind in KINDS}
    return {"kinds": kinds, "cpu": cpu}


def seconds(value: float | None, wait: float) -> str:
    return f"> {wait:.0f} s" if value is None else f"{value:.2f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=10, help="changes of each kind (default 10)")
    parser.add_argument("--spacing", type=float, default=30.0,
                        help="seconds per slot of one change of each kind (default 30: ten slots span the classic "
                             "setup's 300 s re-list)")
    parser.add_argument("--settle", type=float, default=35.0,
                        help="seconds between the initial parse and the first change (default 35: past the 30 s "
                             "[core] min_serialized_dag_update_interval of the classic setup)")
    parser.add_argument("--classic-wait", type=float, default=330.0,
                        help="seconds each change is given to show in the classic setup (its re-list is 300 s)")
    parser.add_argument("--bundle-wait", type=float, default=60.0, help="seconds each change is given with the bundle")
    parser.add_argument("--out", default="airflow_e2e")
    args = parser.parse_args(argv)
    result = run(args.changes, args.spacing, args.settle, args.classic_wait, args.bundle_wait)
    for kind, sides in result["kinds"].items():
        print(f"{kind:12} " + "   ".join(
            f"{side} p50 {seconds(s['p50'], args.classic_wait)} max {seconds(s['max'], args.classic_wait)}"
            for side, s in sides.items()))
    for side, c in result["cpu"].items():
        print(f"{side} dag-processor CPU: {c['cpu_seconds']:.1f} s in {c['wall_seconds']:.0f} s "
              f"({c['percent_of_a_core']:.1f} % of a core)")
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
