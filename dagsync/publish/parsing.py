"""Airflow's own DagBag, run on a project at publish time: which interpreter, in what environment, and the process.

The parse runs `dagbag_child.py` by path in the Airflow interpreter (`--airflow-python`, `$DAGSYNC_AIRFLOW_PYTHON`,
or this interpreter when it can import airflow), in a scratch folder laid out like a host's DAG folder, with an
environment built from an allow-list: DAG top-level code never sees the publisher's credentials; and without network,
in a network namespace of its own where the system allows one (docs/validation.md says what it could still reach).
The child is started before the archive is built, so Airflow imports meanwhile."""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import io
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from dagsync.core import constants
from dagsync.core.archive import iter_members

CHILD = Path(__file__).with_name("dagbag_child.py")
STARTUP_TIMEOUT_S = 180.0  # importing Airflow: about 2 s warm, far more on a cold disk cache
GRACE_S = 30.0  # beyond the per-file timeout, before the child itself is taken for stuck

# What the child inherits from the publisher's environment; everything else is dropped.
PASSED = frozenset({"PATH", "LANG", "LANGUAGE", "TZ"})
PASSED_PREFIXES = ("LC_",)
# Airflow settings that change which files a parse finds, and that hold no secret (exact names: never a _CMD or
# _SECRET variant, which Airflow would run or fetch).
PASSED_AIRFLOW = frozenset({"AIRFLOW__CORE__DAG_IGNORE_FILE_SYNTAX", "AIRFLOW__CORE__DAG_DISCOVERY_SAFE_MODE",
                            "AIRFLOW__CORE__DEFAULT_TIMEZONE"})


NETWORK_NAMESPACE = "none: a network namespace of its own (unshare -rn)"
NETWORK_HOOK = "refused by the child's Python audit hook"


@functools.cache
def network_namespace() -> list[str]:
    """`unshare -rn` when this system lets the publisher give the child a network namespace of its own (no network at
    all, whatever DAG code runs: subprocesses too); else [] and only the child's Python-level guard refuses network."""
    unshare = shutil.which("unshare")
    if unshare is None or not sys.platform.startswith("linux"):
        return []
    try:
        probe = subprocess.run([unshare, "-rn", "true"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [unshare, "-rn"] if probe.returncode == 0 else []


class ParseFailed(Exception):
    """Airflow could not be run on the project at all (not: the project's DAGs are bad). The message says why."""


@dataclass(frozen=True)
class AirflowPython:
    path: Path
    chosen_by: str  # "--airflow-python", "$DAGSYNC_AIRFLOW_PYTHON" or "this interpreter"


def _airflow_installed() -> bool:
    """apache-airflow is installed for this interpreter (asked of its metadata: importing airflow takes seconds, and a
    folder named airflow in the working directory is not Airflow)."""
    try:
        importlib.metadata.version("apache-airflow")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def find_airflow_python(explicit: str | None, environ: Mapping[str, str], *,
                        importable: Callable[[], bool] = _airflow_installed) -> AirflowPython | None:
    """The interpreter to parse with: the flag, else the environment variable, else this interpreter when it can
    import airflow; None when there is none (the `ast` checks only)."""
    env_name = constants.ENV_AIRFLOW_PYTHON
    for value, chosen_by in ((explicit, "--airflow-python"), (environ.get(env_name), f"${env_name}")):
        if value:
            path = Path(os.path.abspath(Path(value).expanduser()))  # absolute, but a venv's link kept as it is
            if not (path.is_file() and os.access(path, os.X_OK)):
                raise ParseFailed(f"{chosen_by} {value}: not an executable file")
            return AirflowPython(path, chosen_by)
    return AirflowPython(Path(sys.executable), "this interpreter") if importable() else None


def child_env(environ: Mapping[str, str], work: Path) -> dict[str, str]:
    """The child's whole environment: an allow-list of the publisher's (locale, PATH, a few Airflow settings) and
    a scratch HOME, TMPDIR and AIRFLOW_HOME, so no credential in the environment or under HOME is in reach."""
    env = {k: v for k, v in environ.items() if k in PASSED or k.startswith(PASSED_PREFIXES) or k in PASSED_AIRFLOW}
    env.update({
        "HOME": str(work / "home"),
        "TMPDIR": str(work / "tmp"),
        "AIRFLOW_HOME": str(work / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(work / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "0",  # dagsync's per-file timeout (a SIGKILL) is the one that counts
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR",
        "AIRFLOW__CORE__DAGBAG_IMPORT_ERROR_TRACEBACK_DEPTH": "50",  # deep enough to show where in the project
        "AWS_EC2_METADATA_DISABLED": "true",  # botocore, if DAG code brings it, does not ask instance metadata
    })
    return env


@dataclass(frozen=True)
class FileResult:
    path: str  # relative to the project
    seconds: float
    dag_ids: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # Airflow's messages (tracebacks), as it recorded them
    stopped: bool = False  # killed at the timeout
    exit: int | None = None  # the parse process ended with this status and no result


@dataclass(frozen=True)
class ParseResult:
    airflow_version: str
    python: AirflowPython
    dags_folder: str  # where the project was parsed (to make Airflow's messages relative)
    files: list[FileResult]
    startup_seconds: float = 0.0  # from starting the child until Airflow was imported in it
    network: str = ""  # how the child was kept off the network: NETWORK_NAMESPACE or NETWORK_HOOK


class DagBagChild:
    """A running child: started now (Airflow imports while the caller builds the archive), asked once, closed."""

    def __init__(self, python: AirflowPython, environ: Mapping[str, str] | None = None) -> None:
        self.python = python
        self.sandbox = network_namespace()
        self.work = Path(os.path.realpath(tempfile.mkdtemp(prefix="dagsync-parse-")))
        for sub in ("home", "tmp", "airflow", "dags"):
            (self.work / sub).mkdir()
        self._log = (self.work / "child.log").open("w+b")
        self._events: queue.Queue[bytes | None] = queue.Queue()
        self._started = time.perf_counter()
        self._first_line_at: float | None = None
        try:
            self.proc = subprocess.Popen(
                [*self.sandbox, os.path.abspath(python.path), "-I", "-B", str(CHILD)], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=self._log, cwd=self.work,
                env=child_env(os.environ if environ is None else environ, self.work),
                start_new_session=True)  # its own process group: close() kills whatever DAG code left behind
        except OSError as exc:
            self._cleanup()
            raise ParseFailed(f"cannot start {python.path} ({python.chosen_by}): {exc}") from None
        self._reader = threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True)
        self._reader.start()

    @property
    def dags(self) -> Path:
        return self.work / "dags"

    def _read(self, stream: IO[bytes]) -> None:
        for line in stream:
            if self._first_line_at is None:
                self._first_line_at = time.perf_counter()  # "ready": Airflow is imported
            self._events.put(line)
        self._events.put(None)

    def _next(self, timeout: float) -> dict[str, Any]:
        try:
            line = self._events.get(timeout=timeout)
        except queue.Empty:
            raise ParseFailed(f"{self.python.path} gave no answer within {timeout:.0f} s") from None
        if line is None:
            code = self.proc.wait()
            raise ParseFailed(f"{self.python.path} exited with status {code} before the parse was done"
                              f"{self._log_tail()}")
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            raise ParseFailed(f"{self.python.path} answered {line[:200]!r}, not the parse protocol") from None
        if not isinstance(event, dict) or event.get("event") == "fatal":
            raise ParseFailed(f"{self.python.path} ({self.python.chosen_by}): "
                              f"{event.get('error') if isinstance(event, dict) else event}")
        return event

    def _log_tail(self) -> str:
        self._log.seek(0)
        tail = self._log.read()[-1500:].decode(errors="replace").strip()
        return f"; its last output: {tail}" if tail else ""

    def parse(self, project: str, archive: bytes, timeout: float) -> ParseResult:
        """Lay the archive out as `<dags>/<project>` and parse every file Airflow lists there."""
        _lay_out(archive, self.dags / project)
        ready = self._next(STARTUP_TIMEOUT_S)
        startup = (self._first_line_at or time.perf_counter()) - self._started
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps({"project": project, "timeout": timeout}).encode() + b"\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass  # the child is gone: _next says how
        files: list[FileResult] = []
        while (event := self._next(timeout + GRACE_S)).get("event") == "file":
            files.append(FileResult(path=str(event["path"]), seconds=float(event["seconds"]),
                                    dag_ids=[str(d) for d in event["dag_ids"]],
                                    errors=[str(e) for e in event["errors"]], stopped=bool(event["stopped"]),
                                    exit=event["exit"]))
        if event.get("event") != "end":
            raise ParseFailed(f"{self.python.path} sent {event!r}, not the parse protocol")
        network = NETWORK_NAMESPACE if self.sandbox else NETWORK_HOOK
        return ParseResult(str(ready["airflow_version"]), self.python, str(self.dags), files, startup, network)

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # the child and anything DAG code started; not yet reaped
        self.proc.wait()
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        self._reader.join(timeout=5)  # the child is gone: its stdout is at EOF
        if self.proc.stdout is not None and not self._reader.is_alive():
            self.proc.stdout.close()  # (never under a reader still in it: that close would wait for the read)
        self._cleanup()

    def _cleanup(self) -> None:
        self._log.close()
        shutil.rmtree(self.work, ignore_errors=True)

    def __enter__(self) -> DagBagChild:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def _lay_out(archive: bytes, dest: Path) -> None:
    """The archive's files under `dest`, as a host would extract them (scratch: no fsync, no staging)."""
    dest.mkdir()
    for member in iter_members(io.BytesIO(archive)):
        target = dest / member.name
        if member.is_dir:
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(member.data)
