"""Running the embedded stack and agents as real processes: used by `make demo`, the e2e tests and
the benchmarks. Everything binds to 127.0.0.1; every process is stopped on exit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from dagsync.core import constants


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_PROFILE", "DAGSYNC_"))}
    env.setdefault("AWS_ACCESS_KEY_ID", "dagsync-local")
    env.setdefault("AWS_SECRET_ACCESS_KEY", "dagsync-local")
    env.update(extra)
    return env


def _bin(name: str) -> list[str]:
    """The console script next to this interpreter, else `python -m`."""
    script = Path(sys.executable).with_name(name)
    if script.exists():
        return [str(script)]
    module = {"dagsync": "dagsync.cli.main", "dagsync-agent": "dagsync.agent.cli"}[name]
    return [sys.executable, "-m", module]


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.002) -> bool:
    """Poll until predicate() is true; False on timeout. (A test helper, never a timed assert.)"""
    deadline = time.monotonic() + timeout
    pause = threading.Event().wait
    while time.monotonic() < deadline:
        if predicate():
            return True
        pause(interval)
    return predicate()


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[str]
    log_path: Path | None = None

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 15.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode


@dataclass
class LocalStackProcess(Process):
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def endpoint_url(self) -> str:
        return str(self.info["endpoint_url"])

    @property
    def bucket(self) -> str:
        return str(self.info["bucket"])

    @property
    def trusted_keys_file(self) -> str:
        """The PEM of the stack's release signing key: agents started here trust it and nothing else."""
        return str(self.info["trusted_keys_file"])


def start_local_stack(hosts: int = 1, *, schedule_interval: float = 60.0, log: TextIO | None = None,
                      timeout: float = 60.0, trusted_keys_file: Path | None = None) -> LocalStackProcess:
    """`dagsync local up` as a process; its signing key's PEM goes to `trusted_keys_file` (default: a temporary
    folder that the stack removes when it stops)."""
    cmd = [*_bin("dagsync"), "local", "up", "--json", "--hosts", str(hosts),
           "--schedule-interval", str(schedule_interval)]
    if trusted_keys_file is not None:
        cmd += ["--trusted-keys-file", str(trusted_keys_file)]
    popen = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log or subprocess.DEVNULL, text=True, env=_env())
    stdout = popen.stdout
    assert stdout is not None
    result: dict[str, Any] = {}
    reader = threading.Thread(target=lambda: result.update(json.loads(stdout.readline() or "{}")),
                              daemon=True)
    reader.start()
    reader.join(timeout)
    if "endpoint_url" not in result:
        popen.kill()
        raise RuntimeError(f"dagsync local up did not become ready (exit {popen.poll()})")
    return LocalStackProcess(name="local-stack", popen=popen, info=result)


def agent_command(stack: LocalStackProcess, host: str, dags_dir: Path, *, mode: str = "run",
                  reconcile_interval: float = 60.0, extra: list[str] | None = None) -> list[str]:
    cmd = [*_bin("dagsync-agent"), mode, "--dags-dir", str(dags_dir), "--bucket", stack.bucket,
           "--endpoint-url", stack.endpoint_url, "--host", host, "--trusted-keys", stack.trusted_keys_file,
           "--reconcile-interval", str(reconcile_interval), "--listen", "0"]
    if mode == "run":
        cmd += ["--queue-url", stack.info["host_queues"][host]]
    return cmd + (extra or [])


def start_agent(stack: LocalStackProcess, host: str, dags_dir: Path, *, reconcile_interval: float = 60.0,
                log_path: Path | None = None, extra: list[str] | None = None) -> Process:
    cmd = agent_command(stack, host, dags_dir, reconcile_interval=reconcile_interval, extra=extra)
    log = open(log_path, "a") if log_path else subprocess.DEVNULL  # noqa: SIM115 - owned by the child
    popen = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True, env=_env())
    return Process(name=f"agent-{host}", popen=popen, log_path=log_path)


@contextmanager
def running(*procs: Process) -> Iterator[None]:
    try:
        yield
    finally:
        for proc in reversed(procs):
            proc.stop()


def aws_env(stack: LocalStackProcess) -> dict[str, str]:
    return {constants.ENV_ENDPOINT_URL: stack.endpoint_url, constants.ENV_BUCKET: stack.bucket}
