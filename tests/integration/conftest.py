"""Fixtures for tests against moto in-process: a provisioned topology, a store, the handler."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from dagsync.core import constants
from dagsync.core.aws import AwsSettings
from dagsync.core.store import S3Store
from dagsync.core.topology import Topology
from dagsync.local.stack import provision
from tests.support import signing

EVENTS = Path(__file__).resolve().parents[1] / "events"


@pytest.fixture
def aws() -> Iterator[dict[str, Any]]:
    """A bucket, queues and topics as `dagsync local up` provisions them, in moto (in-process)."""
    with mock_aws():
        settings = AwsSettings(region="us-east-1")
        info = provision(settings, Topology(prefix=constants.LOCAL_PREFIX, hosts=("host-1",)), "dagsync-artifacts")
        info["settings"] = settings
        yield info


@pytest.fixture
def store(aws: dict[str, Any]) -> S3Store:
    return S3Store(aws["settings"].client("s3"), aws["bucket"])


@pytest.fixture
def trusted(tmp_path: Path) -> list[str]:
    """`--trusted-keys <the tests' public key>`: what every agent a test starts is given."""
    return ["--trusted-keys", str(signing.trusted_keys_file(tmp_path / "keys"))]


@pytest.fixture
def handler(aws: dict[str, Any]) -> Iterator[Any]:
    from dagsync.lambdas import validator as module

    module.configure(module.Settings(bucket=aws["bucket"], topic_arn=aws["topic_arn"],
                                     alert_topic_arn=aws["alert_topic_arn"], signing_key_id=aws["signing_key_arn"]))
    yield module
    module.configure(None)


def event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def drain(aws: dict[str, Any], host: str = "host-1") -> list[dict[str, Any]]:
    """Receive every message waiting on a host queue (what an agent would see)."""
    sqs = aws["settings"].client("sqs")
    out: list[dict[str, Any]] = []
    while True:
        resp = sqs.receive_message(QueueUrl=aws["host_queues"][host], MaxNumberOfMessages=10, WaitTimeSeconds=0)
        if not resp.get("Messages"):
            return out
        for m in resp["Messages"]:
            out.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=aws["host_queues"][host], ReceiptHandle=m["ReceiptHandle"])
