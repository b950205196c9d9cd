"""Shared by the reliability suites: project versions whose torn views are detectable, a checker of a DAG
folder against every published tree, a moto server this process can stop and restart, and HTTP helpers."""

from __future__ import annotations

import json
import os
import socket
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moto.server import ThreadedMotoServer

from dagsync.core import keys
from dagsync.core.aws import AwsSettings
from dagsync.core.models import Release
from dagsync.core.serde import load_json
from dagsync.core.store import S3Store
from dagsync.core.topology import Topology
from dagsync.local.demo import tree_digest
from dagsync.local.stack import EventSourceRunner, provision
from dagsync.publish.publisher import publish

Digest = frozenset[tuple[str, str]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(port: int, path: str, method: str = "GET") -> tuple[int, str]:
    """(status, body) from the agent's health server; (0, "") while it does not answer."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()
    except OSError:
        return 0, ""


def write_version(root: Path, project: str, version: int, *, dag_id: str | None = None, padding: int = 0,
                  imports_lib: bool = True) -> Path:
    """A project folder whose DAG file imports a name only its own version's library defines: a reader (or
    Airflow) that saw the DAG file of one version and the library of another would fail to import it.
    `padding` extra data files make the tree slow enough to extract that a kill can land mid-way."""
    src = root / project / f"v{version}"
    lib = src / f"{project}_lib"
    lib.mkdir(parents=True, exist_ok=True)
    (src / ".airflowignore").write_text(f"{project}_lib/\ndata/\n")
    (lib / "__init__.py").write_text(f"MARKER_{version} = {version}\n")
    (src / f"{project}_dag.py").write_text(
        "from __future__ import annotations\n\n"
        "import pendulum\n"
        "from airflow.sdk import DAG\n\n"
        + (f"from {project}.{project}_lib import MARKER_{version}\n\n" if imports_lib else f"MARKER_{version} = 0\n\n")
        + f"with DAG(dag_id={dag_id or project + '_dag'!r}, schedule=None,\n"
        "         start_date=pendulum.datetime(2026, 1, 1, tz='UTC'), catchup=False,\n"
        + f"         tags=['v{{}}'.format(MARKER_{version})]):\n"
        + "    pass\n"
    )
    if padding:
        data = src / "data"
        data.mkdir(exist_ok=True)
        for i in range(padding):
            (data / f"part-{i:04d}.txt").write_text(f"{project} v{version} part {i}\n" * 20)
    return src


@dataclass
class Published:
    """Every tree a reader may legitimately see, and the sha256 of each (project, version) archive."""

    digests: dict[str, set[Digest]] = field(default_factory=dict)
    shas: dict[tuple[str, str], str] = field(default_factory=dict)

    def add(self, store: S3Store, project: str, version: str, source: Path, *, promote_now: bool = False) -> str:
        self.digests.setdefault(project, set()).add(tree_digest(source))
        result = publish(store, project, version, source, promote_now=promote_now, published_by="reliability")
        self.shas[(project, version)] = result.sha256
        return result.sha256


def folder_problems(dags: Path, published: Published, must_exist: set[str]) -> list[str]:
    """What is wrong with a DAG folder right now: a project missing, a link to a tree that matches no
    published version (torn or foreign), or a link pointing outside the store."""
    problems: list[str] = []
    for project, valid in published.digests.items():
        link = dags / project
        if not os.path.lexists(link):
            if project in must_exist:
                problems.append(f"{project}: missing")
            continue
        target = os.readlink(link)
        if os.path.isabs(target) or not target.startswith(f".dagsync/store/{project}/"):
            problems.append(f"{project}: link points at {target!r}")
            continue
        real = Path(os.path.realpath(link))
        if not real.is_dir():
            problems.append(f"{project}: link to a missing tree {target}")
        elif tree_digest(real) not in valid:
            problems.append(f"{project}: {target} matches no published version")
    return problems


def read_release(store: S3Store) -> Release | None:
    blob = store.get(keys.RELEASE_KEY)
    return None if blob is None else load_json(Release, blob.data, keys.RELEASE_KEY)


def matches_release(dags: Path, release: Release) -> bool:
    """The folder holds exactly the release: one link per project, to the tree the release names."""
    links = {e.name for e in os.scandir(dags) if e.is_symlink() and not e.name.startswith(".")}
    if links != set(release.projects):
        return False
    return all(os.readlink(dags / p) == f".dagsync/store/{p}/{e.tree_name}" for p, e in release.projects.items())


class ControlledMoto:
    """A moto server in this process on a fixed port, provisioned like `dagsync local up`, with the real
    validator behind an in-process event-source runner. `stop()` is an outage of S3, SQS and SNS together;
    `start()` brings a new server up on the same port, and moto's in-process state (the bucket, the queues)
    survives, as a real service's would."""

    def __init__(self, hosts: tuple[str, ...], bucket: str = "dagsync-artifacts") -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.settings = AwsSettings(region="us-east-1", endpoint_url=self.endpoint)
        self.hosts = hosts
        self.bucket = bucket
        self.server: ThreadedMotoServer | None = None
        self.runner: EventSourceRunner | None = None
        self.info: dict[str, Any] = {}

    def start(self) -> None:
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def provision(self, schedule_interval: float = 5.0) -> dict[str, Any]:
        self.reset()  # moto's state is global to this process: start from nothing, as `dagsync local up` would
        topology = Topology(prefix="dagsync", hosts=self.hosts)
        self.info = provision(self.settings, topology, self.bucket)
        self.runner = EventSourceRunner(self.settings, self.info, schedule_interval=schedule_interval)
        self.runner.start()
        return self.info

    def reset(self) -> None:
        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST"), timeout=30)

    def store(self) -> S3Store:
        return S3Store(self.settings.client("s3"), self.bucket)

    def close(self) -> None:
        if self.runner is not None:
            self.runner.stop()
            self.runner.join(timeout=10)
        if self.server is not None:  # leave moto's process-wide state empty for whoever uses moto next
            self.reset()
        self.stop()
        from dagsync.lambdas import validator

        validator.configure(None)  # the next user of the handler reads its own settings


class Watcher(threading.Thread):
    """Checks a DAG folder in a loop, as a parser would, and records every problem it sees."""

    def __init__(self, dags: Path, published: Published, must_exist: set[str]) -> None:
        super().__init__(daemon=True)
        self.dags, self.published, self.must_exist = dags, published, must_exist
        self.scans = 0
        self.problems: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                self.problems.extend(folder_problems(self.dags, self.published, set(self.must_exist)))
            except FileNotFoundError as exc:  # a tree vanished while it was walked: a reader would fail too
                self.problems.append(f"vanished while reading: {exc.filename}")
            self.scans += 1
            self.halt.wait(0.002)

    def finish(self) -> list[str]:
        self.halt.set()
        self.join(timeout=30)
        return self.problems


def figures_line(name: str, **values: Any) -> str:
    """One line of figures, printed by the suites (pytest -s or -rA shows them) for docs/reliability.md."""
    return f"RELIABILITY {name} " + json.dumps(values, sort_keys=True)
