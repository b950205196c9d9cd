"""Propagation and fan-out: manifest write -> project flipped on every host, through the embedded stack.

The stack runs in this process, built from the same pieces as `dagsync local up` (`dagsync.local.stack.provision`
from `Topology`, and the `EventSourceRunner` that long-polls the manifest-events queue and calls the real
validator Lambda handler), on the counting moto server. The agents are real `dagsync-agent run` processes,
each with its own SNS-subscribed SQS queue. For every change the clock starts when the manifest PUT has
returned (as in `make demo`) and stops when a host's symlink points at the new tree (polled every ms).

    python -m bench.propagation --agents 1 --changes 200 --out propagation
    python -m bench.propagation --agents 20 --changes 50 --out fanout
    python -m bench.propagation --projects 10 10000 --changes 50 --out propagation_scale

With --projects above 10, the changes still go to the same 10 projects; the others are loaded into the bucket first
(bench/dataset.py, straight into moto's backend), released by the stack's own validator, and cold-synced by the
agents before the clock starts: the cost of a change must not grow with the projects that did not change.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench import dataset
from bench.common import client, describe, tool_env, write_result
from bench.counting import CountingMotoServer, backend_put
from bench.tools import AGENT
from dagsync.core import constants
from dagsync.core.aws import AwsSettings
from dagsync.core.store import S3Store
from dagsync.core.topology import Topology
from dagsync.local.stack import EventSourceRunner, default_hosts, provision, write_trusted_key
from dagsync.publish.publisher import promote, publish

PROJECTS = 10
# The agents keep one old release view (--keep-views): the steady state of a host that has applied more releases than
# it keeps views, where each new view is repaired from the oldest (a young host builds each new view whole: at 10,000
# projects about a second a change, until it has as many as it keeps).
KEEP_VIEWS = 1
_pause = threading.Event().wait


class Stack:
    """Counting moto server + the local stack's provisioning and validator event source, in this process."""

    def __init__(self, hosts: int) -> None:
        self.server = CountingMotoServer()
        self.hosts = default_hosts(hosts)
        self.runner: EventSourceRunner | None = None
        self.info: dict[str, Any] = {}

    def start(self) -> None:
        url = self.server.start()
        # The validator (in this process) signs as "validator"; everything else names itself.
        os.environ.update({"AWS_ACCESS_KEY_ID": "validator", "AWS_SECRET_ACCESS_KEY": "bench",
                           "AWS_DEFAULT_REGION": constants.DEFAULT_REGION, "POWERTOOLS_LOG_LEVEL": "WARNING"})
        settings = self.settings = AwsSettings(region=constants.DEFAULT_REGION, endpoint_url=url)
        self.info = provision(settings, Topology(prefix=constants.LOCAL_PREFIX, hosts=self.hosts),
                              constants.LOCAL_BUCKET)
        self.runner = EventSourceRunner(settings, self.info, schedule_interval=3600)
        self.runner.start()

    def stop(self) -> None:
        if self.runner:
            self.runner.stop()
            self.runner.join(10)
        self.server.stop()


def start_agents(stack: Stack, work: Path, keep_views: int = KEEP_VIEWS) -> tuple[
        dict[str, Path], list[subprocess.Popen[bytes]]]:
    dirs: dict[str, Path] = {}
    procs: list[subprocess.Popen[bytes]] = []
    # The validator signs with the stack's key in moto's KMS, as under `dagsync local up`: agents pin its public key.
    trusted = write_trusted_key(stack.settings, stack.info["signing_key_arn"], work / "release-signing.pem")
    for host in stack.hosts:
        dags = work / host / "dags"
        dags.mkdir(parents=True)
        dirs[host] = dags
        cmd = [str(AGENT), "run", "--dags-dir", str(dags), "--bucket", constants.LOCAL_BUCKET,
               "--endpoint-url", stack.server.endpoint_url, "--queue-url", stack.info["host_queues"][host],
               "--host", host, "--listen", "0", "--log-level", "warning", "--trusted-keys", str(trusted),
               "--keep-views", str(keep_views)]
        log = open(work / f"{host}.log", "w")  # noqa: SIM115 - owned by the child
        procs.append(subprocess.Popen(cmd, env=tool_env("agent"), stdout=log, stderr=subprocess.STDOUT))
    return dirs, procs


def landed(dags: Path, project: str, sha12: str) -> bool:
    try:
        return os.readlink(dags / project).endswith(sha12)
    except OSError:
        return False


def wait_all(dirs: dict[str, Path], project: str, sha12: str, written: float,
             timeout: float = 60.0) -> dict[str, float]:
    """Seconds from `written` until each host's link points at the tree; polled every millisecond."""
    pending = dict(dirs)
    arrived: dict[str, float] = {}
    deadline = written + timeout
    while pending and time.perf_counter() < deadline:
        for host, dags in list(pending.items()):
            if landed(dags, project, sha12):
                arrived[host] = time.perf_counter() - written
                del pending[host]
        if pending:
            _pause(0.001)
    if pending:
        raise RuntimeError(f"{project} did not reach {sorted(pending)} within {timeout} s")
    return arrived


def run(agents: int, changes: int, work: Path, seed: int = 7, projects: int = PROJECTS,
        keep_views: int = KEEP_VIEWS) -> dict[str, Any]:
    stack = Stack(agents)
    stack.start()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        s3 = client("s3", stack.server.endpoint_url, "publisher")
        store = S3Store(s3, constants.LOCAL_BUCKET)
        if projects > PROJECTS:  # the projects that will not change, released by the stack's validator
            started = time.perf_counter()
            dataset.load(client("s3", stack.server.endpoint_url, "loader"), constants.LOCAL_BUCKET,
                         backend_put(constants.LOCAL_BUCKET), projects - PROJECTS, first=PROJECTS, release=False)
            print(f"{projects - PROJECTS} more projects loaded in {time.perf_counter() - started:.0f} s", flush=True)
        names = [dataset.project_name(i) for i in range(PROJECTS)]
        per_project = changes // PROJECTS + 1
        shas: dict[tuple[str, str], str] = {}
        src = work / "src"
        for i, name in enumerate(names):
            for v in range(per_project + 1):
                version = f"1.{v}.0"
                folder = src / name / version
                folder.mkdir(parents=True)
                for fname, data in dataset.project_files(name, version).items():
                    (folder / fname).write_bytes(data)
                shas[(name, version)] = publish(store, name, version, folder, published_by="bench").sha256
            promote(store, name, "1.0.0")
            if i == 0:
                dirs, procs = start_agents(stack, work, keep_views)
        for name in names:  # a cold sync of every project first: about 25 ms a project on 2 cores
            wait_all(dirs, name, shas[(name, "1.0.0")][:12], time.perf_counter(), timeout=120 + projects * 0.1)
        print(f"{agents} agent(s) up, {projects} projects live; {changes} changes to {PROJECTS} of them", flush=True)
        rng = random.Random(seed)
        before = stack.server.snapshot()
        latencies: list[float] = []
        per_host: list[float] = []
        for i in range(changes):
            name = names[i % PROJECTS]
            version = f"1.{i // PROJECTS + 1}.0"
            change = promote(store, name, version)
            written = time.perf_counter()
            assert change.changed, change
            arrived = wait_all(dirs, name, shas[(name, version)][:12], written)
            latencies.append(max(arrived.values()))
            per_host.extend(arrived.values())
            if (i + 1) % 25 == 0:
                print(f"  {i + 1}/{changes}: last {latencies[-1] * 1000:.0f} ms", flush=True)
            _pause(rng.uniform(0.05, 0.25))  # independent changes, not a burst
        counts = stack.server.snapshot() - before
        alive = [p.poll() is None for p in procs]
        stats = stack.runner.stats if stack.runner else None
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        stack.stop()
    per_change = {who: {op: n / changes for op, n in counts.for_client(who).by_operation.items()}
                  for who in ("publisher", "validator", "agent")}
    return {
        "agents": agents, "changes": changes, "projects": projects, "changed_projects": PROJECTS,
        "keep_views": keep_views,
        "all_hosts_seconds": describe(latencies), "per_host_seconds": describe(per_host),
        "latencies": latencies, "per_host": per_host, "agents_alive_at_end": all(alive),
        "requests_per_change": per_change,
        "bytes_per_change": {who: counts.for_client(who).bytes_moved / changes
                             for who in ("publisher", "validator", "agent")},
        "validator_invocations": stats.invocations if stats else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1)
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--projects", type=int, nargs="+", default=[PROJECTS],
                        help=f"projects in the bucket (at least {PROJECTS}); several: one run each, side by side")
    parser.add_argument("--keep-views", type=int, default=KEEP_VIEWS,
                        help="the agents' --keep-views (default %(default)s: the steady state, see KEEP_VIEWS)")
    parser.add_argument("--out", default="propagation")
    args = parser.parse_args(argv)
    if min(args.projects) < PROJECTS:
        parser.error(f"--projects: at least {PROJECTS} (the changes go to {PROJECTS} projects)")
    results = []
    for projects in args.projects:
        work = Path(tempfile.mkdtemp(prefix="dagsync-bench-prop-"))
        try:
            results.append(run(args.agents, args.changes, work, projects=projects, keep_views=args.keep_views))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        s = results[-1]["all_hosts_seconds"]
        print(f"{projects} projects, {args.agents} agent(s), {args.changes} changes: p50 {s['median'] * 1000:.0f} ms,"
              f" p95 {s['p95'] * 1000:.0f} ms, p99 {s['p99'] * 1000:.0f} ms, max {s['max'] * 1000:.0f} ms", flush=True)
    write_result(args.out, results[0] if len(results) == 1 else {"sizes": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
