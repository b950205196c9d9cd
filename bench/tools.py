"""The three ways to get DAG files onto a host, as the benchmark runs them.

- dagsync: `dagsync-agent once` (a fresh process, as an init container or a cron job would run it) and
  the daemon's own cycle in a long-running process (`bench.agent_probe`).
- `aws s3 sync --delete` from awscli in its own venv (a fresh process: how a cron'd sync runs).
- Airflow 3's S3DagBundle from apache-airflow-providers-amazon in its own venv, driven through
  initialize()/refresh() in a long-running process, as the DAG processor does (`s3_bundle_worker.py`).

Each tool signs its requests with its own access key, which is how the counting server tells them apart."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from bench.common import CACHE, REGION, ROOT, timed_run, tool_env, trusted_keys_file

AWSCLI = CACHE / "awscli" / "bin" / "aws"
AIRFLOW_PY = CACHE / "airflow" / "bin" / "python"
AIRFLOW_CONN_ID = "bench_s3"
AGENT = Path(sys.executable).with_name("dagsync-agent")


def available() -> dict[str, bool]:
    return {"awscli": AWSCLI.exists(), "s3dagbundle": AIRFLOW_PY.exists()}


def reset_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def dagsync_once(endpoint: str, bucket: str, dags_dir: Path, who: str = "dagsync") -> float:
    cmd = [str(AGENT), "once", "--dags-dir", str(dags_dir), "--bucket", bucket, "--endpoint-url", endpoint,
           "--host", "bench-once", "--listen", "0", "--log-level", "warning", "--trusted-keys",
           str(trusted_keys_file())]
    elapsed, _ = timed_run(cmd, tool_env(who))
    return elapsed


def aws_s3_sync(endpoint: str, bucket: str, prefix: str, dest: Path, who: str = "awscli") -> float:
    cmd = [str(AWSCLI), "s3", "sync", f"s3://{bucket}/{prefix}", str(dest), "--delete", "--endpoint-url", endpoint,
           "--exact-timestamps", "--only-show-errors", "--no-progress"]
    elapsed, _ = timed_run(cmd, tool_env(who))
    return elapsed


class Worker:
    """A long-running child that answers one JSON line per command line."""

    def __init__(self, cmd: list[str], env: dict[str, str], log: Path, cwd: Path = ROOT) -> None:
        self.started = time.perf_counter()
        self._log: TextIO = open(log, "w")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                                     text=True, env=env, cwd=cwd)
        self.hello = self._read()
        self.ready_seconds = time.perf_counter() - self.started

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.proc.args!r} exited {self.proc.wait()}; see {self._log.name}")
        return dict(json.loads(line))

    def ask(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        answer = self._read()
        if answer.get("error") and answer.get("outcome") != "noop":
            raise RuntimeError(f"{command}: {answer['error']}")
        return answer

    @property
    def pid(self) -> int:
        return self.proc.pid

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            with contextlib.suppress(BrokenPipeError, OSError):
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def agent_probe(endpoint: str, bucket: str, dags_dir: Path, log: Path, who: str = "dagsync") -> Worker:
    cmd = [sys.executable, "-m", "bench.agent_probe", str(dags_dir), endpoint, bucket, who]
    return Worker(cmd, tool_env(who, PYTHONPATH=str(ROOT)), log)


def s3_bundle(endpoint: str, bucket: str, prefix: str, airflow_home: Path, log: Path, who: str = "airflow") -> Worker:
    conn = {"conn_type": "aws", "login": who, "password": "bench",
            "extra": {"endpoint_url": endpoint, "region_name": REGION}}
    env = tool_env(who, AIRFLOW_HOME=str(airflow_home), **{f"AIRFLOW_CONN_{AIRFLOW_CONN_ID.upper()}": json.dumps(conn)},
                   AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH=str(airflow_home / "dag_bundles"),
                   AIRFLOW__CORE__LOAD_EXAMPLES="false", AIRFLOW__LOGGING__LOGGING_LEVEL="WARNING")
    cmd = [str(AIRFLOW_PY), str(ROOT / "bench" / "s3_bundle_worker.py"), bucket, prefix.rstrip("/"), AIRFLOW_CONN_ID]
    return Worker(cmd, env, log)
