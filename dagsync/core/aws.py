"""The only module that builds boto3 clients. Everything else receives a client or an ObjectStore."""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import boto3
from botocore.config import Config

from dagsync.core import constants

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class AwsSettings:
    region: str
    endpoint_url: str | None = None

    @classmethod
    def resolve(cls, region: str | None = None, endpoint_url: str | None = None) -> AwsSettings:
        """Explicit argument > environment > default."""
        return cls(
            region=region or os.environ.get(constants.ENV_REGION) or os.environ.get("AWS_DEFAULT_REGION")
            or constants.DEFAULT_REGION,
            endpoint_url=endpoint_url or os.environ.get(constants.ENV_ENDPOINT_URL) or None,
        )

    @property
    def is_local(self) -> bool:
        return bool(self.endpoint_url) and urlparse(self.endpoint_url).hostname in LOOPBACK_HOSTS

    def client(self, service: str, **config: Any) -> Any:
        kwargs: dict[str, Any] = {
            "region_name": self.region,
            "config": Config(
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=config.pop("read_timeout", 30),
                **config,
            ),
        }
        if self.endpoint_url:
            kwargs["endpoint_url"] = self.endpoint_url
        session = _session()
        if self.is_local and session.get_credentials() is None:
            # The embedded default (moto on loopback) accepts any key; never fall back to real ones
            # that are not there anyway.
            kwargs["aws_access_key_id"] = "dagsync-local"
            kwargs["aws_secret_access_key"] = "dagsync-local"  # noqa: S105 - not a secret
        with _lock:  # a boto3 Session is not thread-safe while it builds clients; clients are
            _lean_model(session, service)
            return session.client(service, **kwargs)


_lock = threading.Lock()


@functools.cache
def _session() -> boto3.session.Session:
    """One session per process: every client shares its loaded service data (about 8 MB a client saved)."""
    session = boto3.session.Session()
    _lean_endpoints(session)
    return session


# What botocore loads and dagsync never reads: the legacy endpoint table of every AWS service (6.7 MB of Python
# objects; a client takes its URL from its own service's endpoint rule set, the table only adds signing hints for
# the services listed) and each service model's documentation (a third of the S3 model: docstrings and help only).
# botocore's loader caches what it loads and hands the same objects to every client, so trimming them in place
# before the first client is built keeps every later client lean too. The agent's RSS is the reason (docs/agent.md).
ENDPOINT_SERVICES = frozenset({"s3", "sqs", "sns", "kms", "sts", "sso", "sso-oidc"})


def _loader(session: boto3.session.Session) -> Any:
    return session._session.get_component("data_loader")


def _lean_endpoints(session: boto3.session.Session) -> None:
    endpoints, _ = _loader(session).load_data_with_path("endpoints")
    for partition in endpoints.get("partitions", []):
        services = partition.get("services", {})
        for name in [n for n in services if n not in ENDPOINT_SERVICES]:
            del services[name]


_trimmed: set[str] = set()  # services whose cached model is lean already (one session per process)
_operations: dict[str, frozenset[str]] = {}  # service -> the only operations this process calls (only_operations)


def only_operations(service: str, operations: Iterable[str]) -> None:
    """Declare that this process calls only `operations` of `service` (a daemon that knows it: the agent's `run`).
    Its model is then loaded without the other operations and the shapes only they use (S3's from 2.0 to 0.3 MiB
    of Python objects); a client has no method for any other. Before the service's first client in the process."""
    if service in _trimmed and _operations.get(service) != frozenset(operations):
        raise RuntimeError(f"only_operations({service!r}) comes after the process built a {service} client")
    _operations[service] = frozenset(operations)


def _lean_model(session: boto3.session.Session, service: str) -> None:
    if service in _trimmed:
        return
    _trimmed.add(service)
    loader = _loader(session)
    version = loader.determine_latest_version(service, "service-2")
    model = loader.load_service_model(service, "service-2", version)
    _drop_documentation(model)
    if service in _operations:
        _keep_operations(model, _operations[service])


def _keep_operations(model: dict[str, Any], operations: frozenset[str]) -> None:
    unknown = operations - model["operations"].keys()
    if unknown:
        raise ValueError(f"{model['metadata'].get('serviceId')} has no operation {', '.join(sorted(unknown))}")
    shapes, used = model["shapes"], set()

    def use(name: str) -> None:
        if name in used:
            return
        used.add(name)
        shape = shapes[name]
        for ref in [shape.get(k) for k in ("member", "key", "value")] + list(shape.get("members", {}).values()):
            if ref is not None:
                use(ref["shape"])

    for name in list(model["operations"]):
        if name not in operations:
            del model["operations"][name]
            continue
        operation = model["operations"][name]
        for ref in [operation.get("input"), operation.get("output"), *operation.get("errors", [])]:
            if ref is not None:
                use(ref["shape"])
    for name in [n for n in shapes if n not in used]:
        del shapes[name]


def _drop_documentation(node: Any) -> None:
    """Every `documentation` emptied, not removed: botocore reads some of them as required keys."""
    if isinstance(node, dict):
        if isinstance(node.get("documentation"), str):
            node["documentation"] = ""
        for value in node.values():
            _drop_documentation(value)
    elif isinstance(node, list):
        for value in node:
            _drop_documentation(value)


def caller_identity(settings: AwsSettings) -> str | None:
    """The ARN of the caller's AWS identity (STS GetCallerIdentity: no permission needed), for provenance; None when it
    cannot be had (no credentials, STS unreachable): recording who published never blocks a publish."""
    try:
        return str(settings.client("sts", read_timeout=5).get_caller_identity()["Arn"])
    except Exception:
        return None
