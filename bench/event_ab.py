"""One change at N projects, this checkout against another (a baseline), side by side in one run.

    git worktree add /tmp/baseline <commit>
    python -m bench.event_ab --projects 10000 --changes 8 --baseline /tmp/baseline

One moto server holds the dataset (bench/dataset.py); each checkout's own bench/agent_probe.py runs the daemon's
Syncer in its own process on its own DAG folder. After a cold sync, each change is released by the real validator
and applied from its change event (the delta path) by both probes, alternating which goes first. The first change
is not counted: it makes the second release view, so that with BENCH_KEEP_VIEWS=1 every counted change meets the
steady state of a daemon that keeps its views (a new view is repaired from the oldest). A checkout whose probe
does not know BENCH_KEEP_VIEWS (or gc_seconds) simply ignores it (reports none)."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import dataset, tools
from bench.agent_scale import start
from bench.common import BUCKET, ROOT, tool_env, write_result


def probe(stack: Any, checkout: Path, folder: str) -> tools.Worker:
    """The probe of `checkout`, run from it (its own code first on sys.path)."""
    cmd = [sys.executable, "-m", "bench.agent_probe", str(stack.work / folder), stack.server.endpoint_url, BUCKET]
    env = tool_env("dagsync", PYTHONPATH=str(checkout), BENCH_KEEP_VIEWS="1")
    return tools.Worker(cmd, env, stack.work / f"{folder}.log", cwd=checkout)


def compare(projects: int, changes: int, baseline: Path, work: Path) -> dict[str, Any]:
    stack = start(projects, work)
    workers = {"baseline": probe(stack, baseline, "dags-baseline"), "this": probe(stack, ROOT, "dags-this")}
    out: dict[str, Any] = {"projects": projects, "changes": changes, "baseline": str(baseline), "runs": {}}
    try:
        for name, worker in workers.items():
            out["runs"][name] = {"cold_seconds": worker.ask("full")["seconds"], "seconds": [], "gc_seconds": []}
        for n in range(changes + 1):
            path = stack.change(dataset.project_name(n + 3), f"1.{n + 1}.0", f"event-{n}")
            order = list(workers.items())
            for name, worker in order if n % 2 == 0 else reversed(order):
                answer = worker.ask(f"delta {path}")
                assert answer["error"] is None and answer["fetched"] == 1, answer
                if n > 0:
                    out["runs"][name]["seconds"].append(answer["seconds"])
                    out["runs"][name]["gc_seconds"].append(answer.get("gc_seconds"))
            if n > 0:
                print(f"change {n}: " + ", ".join(f"{k} {v['seconds'][-1] * 1000:.0f} ms"
                                                 for k, v in out["runs"].items()), flush=True)
    finally:
        for worker in workers.values():
            worker.close()
        stack.server.stop()
    for run in out["runs"].values():
        run["median_seconds"] = statistics.median(run["seconds"])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=8)
    parser.add_argument("--baseline", type=Path, required=True, help="another checkout of dagsync (git worktree)")
    parser.add_argument("--out", default="event_ab")
    args = parser.parse_args(argv)
    if not (args.baseline / "bench" / "agent_probe.py").is_file():
        parser.error(f"--baseline {args.baseline}: not a dagsync checkout (no bench/agent_probe.py)")
    with tempfile.TemporaryDirectory(prefix="dagsync-event-ab-") as tmp:
        result = compare(args.projects, args.changes, args.baseline.resolve(), Path(tmp))
    base, this = (result["runs"][k]["median_seconds"] * 1000 for k in ("baseline", "this"))
    print(f"{args.projects:,} projects, {args.changes} changes, median one change: baseline {base:.0f} ms, "
          f"this checkout {this:.0f} ms", flush=True)
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
