"""Side by side on the same data, in the same run, on the same moto server: dagsync, `aws s3 sync`, S3DagBundle.

N projects x 10 DAG files, stored as dagsync archives and as plain per-file objects (`plain/`). For each
repeat: cold sync into an empty folder, a no-op sync, then one project changed among N. Requests and bytes
are counted at the server per tool (each signs with its own access key). Also the agent's footprint
(RSS, CPU) while the real daemon cold-syncs the same N projects, runs a full reconcile and then idles.

    python -m bench.side_by_side --projects 1000 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from bench import dataset, tools
from bench.common import BUCKET, client, describe, tool_env, trusted_keys_file, validator, write_result
from bench.counting import CountingMotoServer, Summary, backend_put
from dagsync.core.store import S3Store

TOOLS = ("dagsync once", "dagsync daemon", "aws s3 sync", "S3DagBundle")
WHO = {"dagsync once": "dagsync-once", "dagsync daemon": "dagsync-daemon", "aws s3 sync": "awscli",
       "S3DagBundle": "airflow"}


class Bench:
    def __init__(self, server: CountingMotoServer, work: Path, data: dataset.Dataset) -> None:
        self.server = server
        self.work = work
        self.data = data
        self.url = server.endpoint_url
        self.samples: dict[str, dict[str, list[dict[str, Any]]]] = {"cold": {}, "noop": {}, "change": {}}

    def measure(self, phase: str, tool: str, fn: Callable[[], float | dict[str, Any]]) -> dict[str, Any]:
        before = self.server.snapshot()
        out = fn()
        counted: Summary = (self.server.snapshot() - before).for_client(WHO[tool], "s3")
        row: dict[str, Any] = {"seconds": out} if isinstance(out, float) else dict(out)
        row.update(counted.as_dict())
        self.samples[phase].setdefault(tool, []).append(row)
        print(f"  {phase:6} {tool:15} {row['seconds'] * 1000:9.1f} ms {counted.requests:6} req "
              f"{counted.bytes_moved / 1e6:8.2f} MB", flush=True)
        return row

    def dirs(self, r: int) -> dict[str, Path]:
        base = self.work / f"r{r}"
        return {"once": base / "once-dags", "daemon": base / "daemon-dags", "awscli": base / "awscli-dags",
                "airflow_home": base / "airflow-home"}

    def repeat(self, r: int, have: dict[str, bool]) -> None:
        d = self.dirs(r)
        for path in d.values():
            tools.reset_dir(path)
        probe = tools.agent_probe(self.url, BUCKET, d["daemon"], self.work / f"probe-{r}.log", WHO["dagsync daemon"])
        bundle = None
        if have["s3dagbundle"]:
            bundle = tools.s3_bundle(self.url, BUCKET, dataset.PLAIN_PREFIX, d["airflow_home"],
                                     self.work / f"bundle-{r}.log", WHO["S3DagBundle"])
        try:
            self._cold(d, probe, bundle, have)
            self._noop(d, probe, bundle, have)
            self._change(r, d, probe, bundle, have)
        finally:
            probe.close()
            if bundle:
                bundle.close()

    def _once(self, d: dict[str, Path]) -> float:
        return tools.dagsync_once(self.url, BUCKET, d["once"], WHO["dagsync once"])

    def _in_process(self, worker: tools.Worker, command: str) -> dict[str, Any]:
        answer = worker.ask(command)
        return {"seconds": answer["seconds"], **{k: v for k, v in answer.items() if k != "seconds"}}

    def _cold(self, d: dict[str, Path], probe: tools.Worker, bundle: tools.Worker | None,
              have: dict[str, bool]) -> None:
        self.measure("cold", "dagsync once", lambda: self._once(d))
        self.measure("cold", "dagsync daemon", lambda: self._in_process(probe, "full"))
        if have["awscli"]:
            self.measure("cold", "aws s3 sync",
                         lambda: tools.aws_s3_sync(self.url, BUCKET, dataset.PLAIN_PREFIX, d["awscli"]))
        if bundle:
            row = self.measure("cold", "S3DagBundle", lambda: self._in_process(bundle, "init"))
            row["process_seconds"] = bundle.ready_seconds + row["seconds"]
            row["import_seconds"] = bundle.hello["import_seconds"]
        self._check_all(d, bundle, self.data.versions)

    def _noop(self, d: dict[str, Path], probe: tools.Worker, bundle: tools.Worker | None,
              have: dict[str, bool]) -> None:
        self.measure("noop", "dagsync once", lambda: self._once(d))
        for _ in range(3):
            self.measure("noop", "dagsync daemon", lambda: {**self._in_process(probe, "event"), "kind": "event"})
            self.measure("noop", "dagsync daemon", lambda: {**self._in_process(probe, "full"), "kind": "full"})
        if have["awscli"]:
            self.measure("noop", "aws s3 sync",
                         lambda: tools.aws_s3_sync(self.url, BUCKET, dataset.PLAIN_PREFIX, d["awscli"]))
        if bundle:
            self.measure("noop", "S3DagBundle", lambda: self._in_process(bundle, "refresh"))

    def _change(self, r: int, d: dict[str, Path], probe: tools.Worker, bundle: tools.Worker | None,
                have: dict[str, bool]) -> None:
        project = dataset.project_name((r * 37) % self.data.projects)
        version = f"1.1.{r}"
        s3 = client("s3", self.url, "loader")
        dataset.change_one(s3, BUCKET, self.data, project, version)
        outcome = validator(S3Store(s3, BUCKET)).run()
        assert outcome.status == "accepted", outcome
        self.measure("change", "dagsync once", lambda: self._once(d))
        self.measure("change", "dagsync daemon", lambda: self._in_process(probe, "event"))
        if have["awscli"]:
            self.measure("change", "aws s3 sync",
                         lambda: tools.aws_s3_sync(self.url, BUCKET, dataset.PLAIN_PREFIX, d["awscli"]))
        if bundle:
            self.measure("change", "S3DagBundle", lambda: self._in_process(bundle, "refresh"))
        self._check_all(d, bundle, {project: version})

    def _check_all(self, d: dict[str, Path], bundle: tools.Worker | None, versions: dict[str, str]) -> None:
        """Every tool really has what it was asked to have (a benchmark that syncs nothing proves nothing)."""
        for project, version in versions.items():
            sha = self.data.catalogs[project].entries[-1].sha256
            for key in ("once", "daemon"):
                link = d[key] / project
                assert os.readlink(link).endswith(sha[:12]), (key, project, os.readlink(link))
            expected = f'BUILD = "{version}"'
            assert expected in (d["awscli"] / project / "dag_00.py").read_text(), ("awscli", project)
            if bundle:
                assert expected in (Path(bundle.hello["path"]) / project / "dag_00.py").read_text(), ("bundle", project)


RECONCILE_SETTLE_S = 3.0  # plus a second per 2,000 projects: a full reconcile after the cold sync, watching every tree


def footprint(server: CountingMotoServer, work: Path, projects: int, idle_seconds: float) -> dict[str, Any]:
    """RSS and CPU of the real `dagsync-agent run` daemon: cold sync of every project, a full reconcile, then
    idle."""
    sqs = client("sqs", server.endpoint_url, "loader")
    queue_url = sqs.create_queue(QueueName="bench-footprint")["QueueUrl"]
    dags = tools.reset_dir(work / "footprint-dags")
    cmd = [str(tools.AGENT), "run", "--dags-dir", str(dags), "--bucket", BUCKET, "--endpoint-url",
           server.endpoint_url, "--queue-url", queue_url, "--host", "bench-footprint", "--listen", "0",
           "--log-level", "warning", "--trusted-keys", str(trusted_keys_file())]
    log = open(work / "footprint-agent.log", "w")  # noqa: SIM115
    import subprocess

    started = time.perf_counter()
    popen = subprocess.Popen(cmd, env=tool_env("dagsync-footprint"), stdout=log, stderr=subprocess.STDOUT)
    proc = psutil.Process(popen.pid)
    rss: list[int] = []
    cold_cpu = cold_seconds = 0.0
    try:
        while time.perf_counter() - started < 600:
            rss.append(proc.memory_info().rss)
            if sum(1 for e in os.scandir(dags) if e.is_symlink()) >= projects:
                cold_seconds = time.perf_counter() - started
                t = proc.cpu_times()
                cold_cpu = t.user + t.system
                break
            time.sleep(0.02)
        cold_peak = max(rss)
        # Idle means after a full reconcile has run on what the cold sync left: the first one watches every tree
        # (inotify) and reads every store folder, which the daemon then keeps. SIGHUP asks for one now rather than
        # in a minute; its RSS counts as idle, its CPU does not.
        time.sleep(1.0)  # let the cycle finish (state.json, host status)
        popen.send_signal(signal.SIGHUP)
        settle_until = time.perf_counter() + RECONCILE_SETTLE_S + projects / 2000
        idle_rss: list[int] = []
        while time.perf_counter() < settle_until:
            idle_rss.append(proc.memory_info().rss)
            time.sleep(0.05)
        t0, c0 = time.perf_counter(), proc.cpu_times()
        while time.perf_counter() - t0 < idle_seconds:
            idle_rss.append(proc.memory_info().rss)
            time.sleep(0.2)
        c1 = proc.cpu_times()
        idle_cpu = (c1.user + c1.system) - (c0.user + c0.system)
        idle_wall = time.perf_counter() - t0
    finally:
        popen.terminate()
        popen.wait(30)
        log.close()
    return {
        "projects": projects, "cold_seconds": cold_seconds, "cold_cpu_seconds": cold_cpu,
        "cold_peak_rss_bytes": cold_peak, "idle_rss_bytes": max(idle_rss), "idle_seconds": idle_wall,
        "idle_cpu_seconds": idle_cpu, "idle_cpu_percent": 100 * idle_cpu / idle_wall,
    }


def summarise(samples: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for phase, by_tool in samples.items():
        out[phase] = {}
        for tool, rows in by_tool.items():
            groups: dict[str, list[dict[str, Any]]] = {}
            for row in rows:
                groups.setdefault(str(row.get("kind", "")), []).append(row)
            for kind, group in groups.items():
                name = f"{tool} ({kind})" if kind else tool
                out[phase][name] = {
                    "seconds": describe([g["seconds"] for g in group]),
                    "requests": describe([g["requests"] for g in group]),
                    "bytes_moved": describe([g["bytes_moved"] for g in group]),
                    "by_operation": group[-1]["by_operation"],
                    "statuses": group[-1]["statuses"],
                    **({"process_seconds": describe([g["process_seconds"] for g in group]),
                        "import_seconds": describe([g["import_seconds"] for g in group])}
                       if "process_seconds" in group[0] else {}),
                }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument("--out", default="side_by_side")
    args = parser.parse_args(argv)
    have = tools.available()
    work = Path(tempfile.mkdtemp(prefix="dagsync-bench-sbs-"))
    server = CountingMotoServer()
    server.start()
    try:
        s3 = client("s3", server.endpoint_url, "loader")
        s3.create_bucket(Bucket=BUCKET)
        t0 = time.perf_counter()
        data = dataset.load(s3, BUCKET, backend_put(BUCKET), args.projects)
        print(f"loaded {args.projects} projects in {time.perf_counter() - t0:.1f} s "
              f"({data.archive_bytes / 1e6:.1f} MB archives, {data.plain_bytes / 1e6:.1f} MB plain files); "
              f"tools: {have}", flush=True)
        bench = Bench(server, work, data)
        for r in range(args.repeats):
            print(f"repeat {r + 1}/{args.repeats}", flush=True)
            bench.repeat(r, have)
        print("agent footprint", flush=True)
        foot = footprint(server, work, args.projects, args.idle_seconds)
        print(f"  {foot}", flush=True)
        write_result(args.out, {
            "projects": args.projects, "files_per_project": dataset.FILES_PER_PROJECT, "repeats": args.repeats,
            "archive_bytes": data.archive_bytes, "plain_bytes": data.plain_bytes, "tools": have,
            "summary": summarise(bench.samples), "samples": bench.samples, "footprint": foot,
        })
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
