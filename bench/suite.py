"""`make bench` / `make bench-quick`: every benchmark, then docs/benchmarks.md and docs/propagation.png.

Each scenario runs in its own process (its own moto server and stack), one after the other, so none of
them shares the two cores with another. Results land in .bench-cache/results/ as JSON; the report is
written from those files alone (`python -m bench.report` rewrites it without re-running anything)."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

from bench import report
from bench.common import ROOT, machine, write_result


@dataclass(frozen=True)
class Sizes:
    mode: str
    projects: int
    scale: tuple[int, ...]  # the agent alone (bench/agent_scale.py) and the validator, at each of these
    repeats: int
    changes: int
    agents: int
    fanout_changes: int
    idle_seconds: float
    scale_changes: int = 50  # propagation at 10 projects and at the largest scale size


FULL = Sizes("full", projects=1000, scale=(1000, 10000), repeats=3, changes=200, agents=20, fanout_changes=50,
             idle_seconds=20)
QUICK = Sizes("quick", projects=100, scale=(100,), repeats=2, changes=50, agents=5, fanout_changes=20, idle_seconds=5,
              scale_changes=20)

_VALIDATOR_ROW = re.compile(
    r"^(?P<label>.+?)\s{2,}(?P<status>accepted|noop|rejected)\s+changed=(?P<changed>\d+)\s+requests=(?P<requests>\d+)"
    r"\s+\((?P<ops>[^)]*)\)\s+(?P<ms>[\d.]+) ms$")


def step(name: str, cmd: list[str]) -> tuple[float, str]:
    print(f"\n== {name}: {' '.join(cmd[1:])}", flush=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    elapsed = time.perf_counter() - start
    print(proc.stdout[-6000:], end="", flush=True)
    if proc.returncode != 0:
        raise SystemExit(f"bench: {name} failed (exit {proc.returncode})")
    print(f"   ({elapsed:.0f} s)", flush=True)
    return elapsed, proc.stdout


def validator(projects: int) -> tuple[float, dict[str, Any]]:
    """bench/validator_scale.py (written alongside this suite) is called, not duplicated; its lines are parsed."""
    cmd = [sys.executable, "bench/validator_scale.py", "--projects", str(projects)]
    elapsed, out = step("validator", cmd)
    rows = []
    for line in out.splitlines():
        m = _VALIDATOR_ROW.match(line.strip())
        if m:
            rows.append({"label": m["label"].strip(), "status": m["status"], "changed": int(m["changed"]),
                         "requests": int(m["requests"]), "operations": m["ops"], "ms": float(m["ms"])})
    return elapsed, {"projects": projects, "command": " ".join(cmd), "rows": rows, "stdout": out}


def verification(scenario: Any, sizes: Sizes) -> None:
    """bench/verify_release.py: a host's cost to verify a signed release (10,000 projects, the issue's size, in both
    modes: it is CPU only and takes seconds)."""
    scenario("verify_release", "bench.verify_release", "--projects", "10000", "--repeats",
             "200" if sizes.mode == "full" else "50")


def airflow_e2e_flags(quick: bool) -> list[str]:
    """bench/airflow_e2e.py: its defaults are the full form (10 changes of each kind in 30 s slots, each given 330 s
    to show in the classic setup: about 13 minutes); the quick form gives the classic setup 30 s (about 2)."""
    return ["--changes", "2", "--spacing", "12", "--settle", "0", "--classic-wait", "30"] if quick else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a few minutes on 2 cores")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    py = sys.executable
    started = time.perf_counter()
    durations: dict[str, float] = {}
    commands: dict[str, str] = {}

    def scenario(name: str, module: str, *flags: str) -> None:
        cmd = [py, "-m", module, *flags, "--out", name]
        commands[name] = "python -m " + " ".join([module, *flags])
        durations[name], _ = step(name, cmd)

    scenario("propagation", "bench.propagation", "--agents", "1", "--changes", str(sizes.changes))
    scenario("fanout", "bench.propagation", "--agents", str(sizes.agents), "--changes", str(sizes.fanout_changes))
    for n in sizes.scale if sizes.projects in sizes.scale else (sizes.projects, *sizes.scale):
        name = "validator" if n == sizes.projects else f"validator_{n}"
        durations[name], found = validator(n)
        commands[name] = found["command"].replace(py, "python")
        write_result(name, found)
    scenario("agent_scale", "bench.agent_scale", "--projects", *map(str, sizes.scale))
    scenario("propagation_scale", "bench.propagation", "--projects", "10", str(max(sizes.scale)), "--changes",
             str(sizes.scale_changes))
    scenario("soak", "bench.soak", "--projects", "100", "--changes", "1000" if sizes.mode == "full" else "100")
    verification(scenario, sizes)
    scenario("side_by_side", "bench.side_by_side", "--projects", str(sizes.projects), "--repeats",
             str(sizes.repeats), "--idle-seconds", str(sizes.idle_seconds))
    scenario("parse_gate", "bench.parse_gate", "--repeats", "5" if sizes is FULL else "2")
    scenario("airflow_e2e", "bench.airflow_e2e", *airflow_e2e_flags(args.quick))
    total = time.perf_counter() - started
    write_result("run", {"sizes": asdict(sizes), "machine": machine(), "durations": durations,
                         "commands": commands, "total_seconds": total,
                         "make_target": "bench-quick" if args.quick else "bench"})
    path = report.write()
    print(f"\nbench: {sizes.mode} run took {total:.0f} s; wrote {path.relative_to(ROOT)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
