"""Parse one project with Airflow's own DagBag. Runs inside the Airflow interpreter, never inside dagsync:

    AIRFLOW_PYTHON -I -B dagbag_child.py

It imports the standard library and Airflow only (dagsync and its dependencies need not be installed where Airflow
is; an import contract holds this), and `dagsync.publish.parsing` starts it by path with an environment built from
an allow-list. Protocol, one JSON object a line on the stdout it was started with:

    -> {"event": "ready", "airflow_version": "3.3.2", "safe_mode": true}   Airflow imported (or "fatal", "error")
    <- {"project": "sales", "timeout": 6.0}                                one request, on stdin
    -> {"event": "file", "path": "a.py", "seconds": 0.12, "dag_ids": [...], "errors": [...], "stopped": false,
        "exit": null}                                                       per file Airflow lists, in its order
    -> {"event": "end"}

The project is `$AIRFLOW__CORE__DAGS_FOLDER/<project>`, laid out as on a host. Each file is parsed in a process
forked for it (as Airflow's DAG processor does), so one file's imports neither speed up nor break another's, and a
file still running after `timeout` seconds is killed. In that process, network access is refused before any DAG code
runs. Anything else written to stdout (Airflow's logs, print() in DAG files) goes to stderr."""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO

NETWORK_EVENTS = frozenset({"socket.connect", "socket.sendto", "socket.sendmsg", "socket.bind", "socket.getaddrinfo",
                            "socket.gethostbyname", "socket.gethostbyaddr", "socket.getnameinfo"})


def _send(channel: BinaryIO, event: dict[str, Any]) -> None:
    channel.write(json.dumps(event).encode() + b"\n")
    channel.flush()


def _refuse_network(event: str, args: tuple[Any, ...]) -> None:
    """An audit hook: top-level DAG code reaches no network while it is parsed (Python-level guard; see
    docs/validation.md for what it does not cover)."""
    if event in NETWORK_EVENTS:
        target = args[1] if event in ("socket.connect", "socket.sendto", "socket.bind") and len(args) > 1 else args
        raise PermissionError(f"network access is refused while dagsync parses DAG files ({event} {target!r})")


def _parse_here(bag: Any, path: str, safe_mode: bool) -> dict[str, Any]:
    """In the forked process: parse `path` and say what Airflow made of it."""
    start = time.perf_counter()
    try:
        found = bag.process_file(path, only_if_updated=False, safe_mode=safe_mode)
        dag_ids = sorted({dag.dag_id for dag in found})
    except BaseException as exc:  # SystemExit from top-level code too: report it, never crash silently
        return {"seconds": time.perf_counter() - start, "dag_ids": [], "errors": [f"{type(exc).__name__}: {exc}"]}
    errors = [str(message) for message in bag.import_errors.values()]
    return {"seconds": time.perf_counter() - start, "dag_ids": dag_ids, "errors": errors}


def _fork_and_parse(bag: Any, path: str, safe_mode: bool, timeout: float, channel: int) -> dict[str, Any]:
    """Parse `path` in a child process; kill it once it has run for `timeout` seconds. The child closes `channel`
    (the protocol's stdout), so DAG code cannot write into the protocol."""
    read_end, write_end = os.pipe()
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child: no way back into the loop below
        os.close(read_end)
        try:
            os.close(channel)
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            sys.addaudithook(_refuse_network)
            data = json.dumps(_parse_here(bag, path, safe_mode)).encode() + b"\n"
            while data:
                data = data[os.write(write_end, data):]
        finally:
            os._exit(0)
    os.close(write_end)
    chunks: list[bytes] = []
    stopped = False
    try:
        while not chunks or not chunks[-1].endswith(b"\n"):
            left = timeout - (time.perf_counter() - started)
            if left <= 0 or not select.select([read_end], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                stopped = True
                break
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_end)
    _, status = os.waitpid(pid, 0)
    elapsed = time.perf_counter() - started
    if stopped:
        return {"seconds": elapsed, "dag_ids": [], "errors": [], "stopped": True, "exit": None}
    raw = b"".join(chunks)
    if not raw.endswith(b"\n"):  # os._exit() or a crash in top-level code: no result
        return {"seconds": elapsed, "dag_ids": [], "errors": [], "stopped": False,
                "exit": os.waitstatus_to_exitcode(status)}
    return {**json.loads(raw), "stopped": False, "exit": None}


def main() -> int:
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # Airflow's logs and DAG files' prints go to stderr, never into the protocol
    try:
        import airflow
        from airflow.configuration import conf
        from airflow.dag_processing.dagbag import DagBag
        from airflow.dag_processing.importers.base import get_importer_registry
    except BaseException as exc:
        _send(channel, {"event": "fatal", "error": f"cannot import Airflow's DagBag: {type(exc).__name__}: {exc}"})
        return 1
    dags_folder = os.path.abspath(conf.get("core", "DAGS_FOLDER"))
    safe_mode = conf.getboolean("core", "DAG_DISCOVERY_SAFE_MODE")
    _send(channel, {"event": "ready", "airflow_version": airflow.__version__, "safe_mode": safe_mode})
    request = json.loads(sys.stdin.readline() or "null")
    if not isinstance(request, dict):
        return 0  # the publisher went away before asking
    if dags_folder not in sys.path:
        sys.path.insert(0, dags_folder)  # as on a host: a project imports its packages as <project>.<package>
    root = os.path.join(dags_folder, request["project"])
    bag = DagBag(dag_folder=dags_folder, collect_dags=False, bundle_path=Path(dags_folder), bundle_name="dags-folder")
    for path in get_importer_registry().list_dag_files(root, safe_mode=safe_mode):
        result = _fork_and_parse(bag, path, safe_mode, float(request["timeout"]), channel.fileno())
        _send(channel, {"event": "file", "path": os.path.relpath(path, root), **result})
    _send(channel, {"event": "end"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
