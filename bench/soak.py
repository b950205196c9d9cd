"""Memory over many changes: the agent's RSS after each applied change event, for a reduced soak.

    python -m bench.soak --projects 100 --changes 500

One moto server (in this process) and the daemon's Syncer in its own process (bench/agent_probe.py, with
--retention-grace 0); each change is a new version of one project (round-robin), released by the real validator
and applied from its change event (the delta path), then a full reconcile. RSS is sampled after every change;
growth is the last tenth's median minus the second tenth's (the first is warm-up), and per change, so that a
10,000-change soak can be extrapolated from it and said to be so."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import dataset
from bench.agent_scale import start
from bench.common import write_result


def soak(projects: int, changes: int, work: Path) -> dict[str, Any]:
    stack = start(projects, work)
    # Retired trees go at once (the default keeps them an hour): what grows then is what the agent leaks, not the
    # retention backlog, which a soak of minutes would otherwise measure.
    worker = stack.probe(BENCH_RETENTION_GRACE="0")
    rss: list[int] = []
    try:
        assert worker.ask("full")["error"] is None
        for n in range(changes):
            path = stack.change(dataset.project_name(n % projects), f"2.{n}.0")
            answer = worker.ask(f"delta {path}")
            assert answer["error"] is None and answer["fetched"] == 1, answer
            rss.append(worker.ask("full")["rss_bytes"])
            if (n + 1) % max(1, changes // 10) == 0:  # a long soak says how far it is, and what RSS does meanwhile
                print(f"{n + 1} changes: RSS {rss[-1] / 2**20:.1f} MiB", flush=True)
    finally:
        worker.close()
        stack.server.stop()
    tenth = max(1, changes // 10)
    first, last = statistics.median(rss[tenth:2 * tenth]), statistics.median(rss[-tenth:])
    per_change = (last - first) / max(1, changes - 2 * tenth)
    return {"projects": projects, "changes": changes, "rss_bytes": rss, "growth_bytes": last - first,
            "growth_per_change_bytes": per_change, "extrapolated_10000_changes_bytes": per_change * 10000}


def summary(result: dict[str, Any]) -> str:
    mib = 1 / 2**20
    rss = result["rss_bytes"]
    return (f"{result['changes']} changes over {result['projects']} projects: RSS {rss[0] * mib:.1f} -> "
            f"{rss[-1] * mib:.1f} MiB; growth {result['growth_bytes'] * mib:.2f} MiB "
            f"({result['growth_per_change_bytes']:.0f} B per change; 10,000 changes extrapolated: "
            f"{result['extrapolated_10000_changes_bytes'] * mib:.1f} MiB)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=100)
    parser.add_argument("--changes", type=int, default=500)
    parser.add_argument("--out", default="soak")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dagsync-soak-") as tmp:
        result = soak(args.projects, args.changes, Path(tmp))
    print(summary(result), flush=True)
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
