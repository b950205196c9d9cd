"""The agent at scale: cold sync, no-op reconciles, one change (delta and fallback), memory, at N projects.

    python -m bench.agent_scale --projects 1000 10000

For each size: a moto server (request-counting) in this process, the dataset loaded straight into it, and the
daemon's Syncer in its own process (bench/agent_probe.py), so time, requests, bytes and RSS are the agent's alone.
Phases: cold sync (`full` on an empty folder); the reconcile that follows a change (`scan`: the volume is read,
every tree's watch armed); the quiet minute-by-minute reconcile (`full`, repeated); one changed project applied
from its change event (`delta`: the release the validator just wrote, with the entries the gate announces);
the same through a conditional read of release.json (`event`, one more change, no event content). The probe's
RSS includes the benchmark's imports, so memory is measured on the real daemon instead (`footprint`, first).
At the smallest size (`--peers-at`), `aws s3 sync` and Airflow's S3DagBundle run cold, no-op and one change on the
same bucket (its plain layout), so the larger sizes can be compared with them extrapolated linearly, as marked."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import dataset, tools
from bench.common import BUCKET, ROOT, SIGNER, client, tool_env, write_result
from bench.counting import CountingMotoServer, backend_put
from bench.side_by_side import footprint
from dagsync.core.models import ChangeEvent
from dagsync.core.signatures import TrustedKeys
from dagsync.core.store import S3Store
from dagsync.gate.validator import Validator

QUIET_REPEATS = 20
SCAN_REPEATS = 5
IDLE_SECONDS = 10.0


@dataclass
class Stack:
    """A counting moto server holding the dataset, the real validator (its change events kept) and a probe."""

    server: CountingMotoServer
    s3: Any
    data: dataset.Dataset
    gate: Validator
    events: list[ChangeEvent]
    work: Path

    def probe(self, **env: str) -> tools.Worker:
        return tools.Worker([sys.executable, "-m", "bench.agent_probe", str(self.work / "dags"),
                             self.server.endpoint_url, BUCKET],
                            tool_env("dagsync", PYTHONPATH=str(ROOT), **env), self.work / "probe.log")

    def change(self, project: str, version: str, name: str = "event") -> Path:
        """A new version of `project`, released; returns where its change event was written."""
        dataset.change_one(self.s3, BUCKET, self.data, project, version)
        outcome = self.gate.run()
        assert outcome.status == "accepted", outcome
        path = self.work / f"{name}.json"
        path.write_text(self.events[-1].model_dump_json())
        return path


def start(projects: int, work: Path) -> Stack:
    server = CountingMotoServer()
    s3 = client("s3", server.start(), "loader")
    s3.create_bucket(Bucket=BUCKET)
    data = dataset.load(s3, BUCKET, backend_put(BUCKET), projects)
    events: list[ChangeEvent] = []
    gate = Validator(S3Store(s3, BUCKET), on_release=events.append, record_history=False, signer=SIGNER,
                     verifier=TrustedKeys([SIGNER.public_key]))
    return Stack(server, s3, data, gate, events, work)


def peers(stack: Stack, bundle: tools.Worker | None, phase: str) -> dict[str, Any]:
    """`aws s3 sync` and S3DagBundle (both optional: bench/setup.sh) on the plain layout: seconds, requests, bytes."""
    out: dict[str, Any] = {}
    runs: dict[str, Any] = {}
    if tools.available()["awscli"]:
        runs["aws s3 sync"] = ("awscli", lambda: tools.aws_s3_sync(stack.server.endpoint_url, BUCKET,
                                                                   dataset.PLAIN_PREFIX, stack.work / "awscli"))
    if bundle is not None:
        runs["S3DagBundle"] = ("airflow", lambda: bundle.ask("init" if phase == "cold" else "refresh")["seconds"])
    for tool, (who, call) in runs.items():
        before = stack.server.snapshot()
        seconds = call()
        counted = (stack.server.snapshot() - before).for_client(who)
        out[tool] = {"seconds": seconds, "requests": counted.requests, "bytes": counted.bytes_moved}
    if phase == "cold":  # a benchmark that syncs nothing proves nothing: every file is there
        wanted = stack.data.projects * dataset.FILES_PER_PROJECT
        folders = {"aws s3 sync": stack.work / "awscli", "S3DagBundle": Path(bundle.hello["path"]) if bundle else None}
        for tool in out:
            folder = folders[tool]
            assert folder is not None
            found = sum(1 for f in folder.rglob("*") if f.is_file())
            assert found == wanted, f"{tool}: {found} files in {folder}, not {wanted}"
    return out


def one_size(projects: int, work: Path, with_peers: bool = False) -> dict[str, Any]:
    stack = start(projects, work)
    server = stack.server
    # Memory first, on its own: the real `dagsync-agent run` daemon's cold sync and idle (side_by_side.footprint).
    out: dict[str, Any] = {"projects": projects, "footprint": footprint(server, work, projects, IDLE_SECONDS)}
    worker = stack.probe(BENCH_KEEP_VIEWS="1")  # the steady state of many releases: a new view repairs the oldest
    bundle = None
    if with_peers and tools.available()["s3dagbundle"]:
        bundle = tools.s3_bundle(server.endpoint_url, BUCKET, dataset.PLAIN_PREFIX, work / "airflow",
                                 work / "bundle.log")
    out["peers"] = {}

    def ask(command: str) -> dict[str, Any]:
        before = server.snapshot()
        answer: dict[str, Any] = worker.ask(command)
        assert answer["error"] is None, answer
        counted = (server.snapshot() - before).for_client("dagsync")
        answer.update(requests=counted.requests, bytes=counted.bytes_moved, by_operation=counted.by_operation)
        return answer

    try:
        out["cold"] = ask("full")
        warm = stack.change(dataset.project_name(2), "1.1.0", "event-warm")  # a second view, to be repaired next
        assert worker.ask(f"delta {warm}")["error"] is None
        out["scan"] = [ask("scan") for _ in range(SCAN_REPEATS)]
        out["quiet"] = [ask("full") for _ in range(QUIET_REPEATS)]
        if with_peers:
            out["peers"] = {"cold": peers(stack, bundle, "cold"), "noop": peers(stack, bundle, "noop")}
        for kind, version in (("delta", "1.1.0"), ("event", "1.2.0")):
            path = stack.change(dataset.project_name(1), version, f"event-{kind}")
            out[kind] = ask(f"delta {path}" if kind == "delta" else "event")
            assert out[kind]["fetched"] == 1, out[kind]
            out[f"{kind}_event_bytes"] = len(path.read_bytes())
            if with_peers and kind == "delta":
                out["peers"]["change"] = peers(stack, bundle, "change")
        out["after_change"] = ask("full")
        out["quiet_after"] = [ask("full") for _ in range(QUIET_REPEATS)]
    finally:
        worker.close()
        if bundle is not None:
            bundle.close()
        server.stop()
    return out


def summary(r: dict[str, Any]) -> str:
    def med(rows: list[dict[str, Any]]) -> float:
        return statistics.median(a["seconds"] for a in rows) * 1000

    foot = r["footprint"]
    seen = "".join(f"; {phase} {tool} {row['seconds']:.1f} s" for phase, by in r.get("peers", {}).items()
                   for tool, row in by.items())
    return (f"{r['projects']:>6} projects: cold {r['cold']['seconds']:.1f} s ({r['cold']['requests']} requests), "
            f"scan no-op {med(r['scan']):.1f} ms, quiet no-op {med(r['quiet']):.1f} ms "
            f"({r['quiet'][-1]['requests']} requests), delta {r['delta']['seconds'] * 1000:.0f} ms "
            f"({r['delta']['requests']} requests, {r['delta']['bytes']:,} B), event {r['event']['seconds'] * 1000:.0f}"
            f" ms ({r['event']['requests']} requests, {r['event']['bytes']:,} B), daemon RSS cold peak "
            f"{foot['cold_peak_rss_bytes'] / 2**20:.1f} MiB, idle {foot['idle_rss_bytes'] / 2**20:.1f} MiB{seen}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--peers-at", type=int, default=None,
                        help="the size at which aws s3 sync and S3DagBundle run too (default: the smallest; 0: none)")
    parser.add_argument("--out", default="agent_scale")
    args = parser.parse_args(argv)
    peers_at = min(args.projects) if args.peers_at is None else args.peers_at
    results = []
    for n in args.projects:
        with tempfile.TemporaryDirectory(prefix="dagsync-agent-scale-") as tmp:
            results.append(one_size(n, Path(tmp), with_peers=n == peers_at))
        print(summary(results[-1]), flush=True)
    write_result(args.out, {"sizes": results, "quiet_repeats": QUIET_REPEATS, "scan_repeats": SCAN_REPEATS})
    return 0


if __name__ == "__main__":
    sys.exit(main())
