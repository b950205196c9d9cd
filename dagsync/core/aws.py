"""The only module that builds boto3 clients. Everything else receives a client or an ObjectStore."""

from __future__ import annotations

import functools
import os
import threading
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
            return session.client(service, **kwargs)


_lock = threading.Lock()


@functools.cache
def _session() -> boto3.session.Session:
    """One session per process: every client shares its loaded service data (about 8 MB a client saved)."""
    return boto3.session.Session()


def caller_identity(settings: AwsSettings) -> str | None:
    """The ARN of the caller's AWS identity (STS GetCallerIdentity: no permission needed), for provenance; None when it
    cannot be had (no credentials, STS unreachable): recording who published never blocks a publish."""
    try:
        return str(settings.client("sts", read_timeout=5).get_caller_identity()["Arn"])
    except Exception:
        return None
