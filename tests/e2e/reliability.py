"""Shared by the reliability suites: every tree published (for the torn-view watcher in dagsync.local.watch),
a moto server this process can stop and restart, provisioned like `dagsync local up`, and HTTP helpers."""

from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagsync.core import documents
from dagsync.core.aws import AwsSettings
from dagsync.core.models import Release
from dagsync.core.store import S3Store
from dagsync.core.topology import Topology
from dagsync.local.stack import EventSourceRunner, provision, write_trusted_key
from dagsync.local.watch import Tree, tree_files
from dagsync.publish.publisher import publish
from tests.support.moto import LoopbackMoto


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


@dataclass
class Published:
    """Every tree a reader may legitimately see, and the sha256 of each (project, version) archive."""

    digests: dict[str, set[Tree]] = field(default_factory=dict)
    shas: dict[tuple[str, str], str] = field(default_factory=dict)

    def add(self, store: S3Store, project: str, version: str, source: Path, *, promote_now: bool = False) -> str:
        self.digests.setdefault(project, set()).add(tree_files(source))
        result = publish(store, project, version, source, promote_now=promote_now, published_by="reliability")
        self.shas[(project, version)] = result.sha256
        return result.sha256


def read_release(store: S3Store) -> Release | None:
    return documents.read_release(store)[0]


def matches_release(dags: Path, release: Release) -> bool:
    """The folder holds exactly the release: one link per project, to the tree the release names."""
    links = {e.name for e in os.scandir(dags) if e.is_symlink() and not e.name.startswith(".")}
    if links != set(release.projects):
        return False
    return all(os.readlink(dags / p) == f".dagsync/store/{p}/{e.tree_name}" for p, e in release.projects.items())


class ControlledMoto(LoopbackMoto):
    """The loopback moto server provisioned like `dagsync local up`, with the real validator behind an
    in-process event-source runner. `stop()` is an outage of S3, SQS and SNS together; `start()` brings the
    server back on the same port with its state (the bucket, the queues), as a real service's would."""

    def __init__(self, hosts: tuple[str, ...], bucket: str = "dagsync-artifacts") -> None:
        super().__init__()
        self.hosts = hosts
        self.bucket = bucket
        self.runner: EventSourceRunner | None = None
        self.info: dict[str, Any] = {}

    @property
    def settings(self) -> AwsSettings:
        return AwsSettings(region="us-east-1", endpoint_url=self.endpoint)

    def provision(self, schedule_interval: float = 5.0) -> dict[str, Any]:
        self.reset()  # moto's state is global to this process: start from nothing, as `dagsync local up` would
        topology = Topology(prefix="dagsync", hosts=self.hosts)
        self.info = provision(self.settings, topology, self.bucket)
        self.runner = EventSourceRunner(self.settings, self.info, schedule_interval=schedule_interval)
        self.runner.start()
        return self.info

    def store(self) -> S3Store:
        return S3Store(self.settings.client("s3"), self.bucket)

    def trusted_keys_file(self, folder: Path) -> Path:
        """The public key of the release signing key (in moto's KMS) as a PEM file in `folder`, as `dagsync local
        up` writes it: what the agents here are given with --trusted-keys."""
        return write_trusted_key(self.settings, self.info["signing_key_arn"], folder / "release-signing.pem")

    def close(self) -> None:
        if self.runner is not None:
            self.runner.stop()
            self.runner.join(timeout=10)
        super().close()
        from dagsync.lambdas import validator

        validator.configure(None)  # the next user of the handler reads its own settings


def figures_line(name: str, **values: Any) -> str:
    """One line of figures, printed by the suites (pytest -s or -rA shows them) for docs/reliability.md."""
    return f"RELIABILITY {name} " + json.dumps(values, sort_keys=True)
