"""The embedded default: the whole design on one machine, with no AWS account.

A moto server on 127.0.0.1 holds the same resources the CDK stack declares (both are built from
`Topology`), and an event-source runner stands in for Lambda's SQS event source mapping and the
EventBridge schedule: it long-polls the manifest-events queue and calls the real validator handler
in-process with Lambda-shaped events, deleting only the records the handler did not report as failed."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagsync.core import constants, kms, signatures
from dagsync.core.archive import write_atomic
from dagsync.core.aws import AwsSettings
from dagsync.core.topology import Topology
from dagsync.lambdas.invoke import InvocationContext

log = logging.getLogger("dagsync.local")


def default_hosts(count: int) -> tuple[str, ...]:
    return tuple(f"host-{i}" for i in range(1, count + 1))


def signing_key(client: Any, alias: str) -> str:
    """The ARN of the release signing key with `alias`, created (ECC_NIST_P256, sign/verify) when there is none."""
    try:
        return str(client.describe_key(KeyId=alias)["KeyMetadata"]["Arn"])
    except client.exceptions.NotFoundException:
        return kms.create_signing_key(client, alias, "dagsync release signing (local stack)")


def provision(settings: AwsSettings, topology: Topology, bucket: str) -> dict[str, Any]:
    """Create the bucket, queues, topics, subscriptions, the manifest notification and the release signing key.
    Idempotent."""
    s3, sqs, sns = settings.client("s3"), settings.client("sqs"), settings.client("sns")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})

    def queue(name: str, dlq: str) -> tuple[str, str]:
        dlq_url = sqs.create_queue(QueueName=dlq)["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(constants.MAX_RECEIVE_COUNT)})
        url = sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": redrive})["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return url, arn

    events_url, events_arn = queue(topology.manifest_events_queue, topology.manifest_events_dlq)
    rule = topology.notification
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": events_arn,
                    "Events": list(rule.events),
                    "Filter": {
                        "Key": {
                            "FilterRules": [
                                {"Name": "prefix", "Value": rule.prefix},
                                {"Name": "suffix", "Value": rule.suffix},
                            ]
                        }
                    },
                }
            ]
        },
    )
    topic_arn = sns.create_topic(Name=topology.changes_topic)["TopicArn"]
    alert_arn = sns.create_topic(Name=topology.alerts_topic)["TopicArn"]
    host_queues: dict[str, str] = {}
    for host in topology.hosts:
        url, arn = queue(topology.host_queue(host), topology.host_dlq(host))
        sns.subscribe(
            TopicArn=topic_arn, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"}
        )
        host_queues[host] = url
    return {
        "endpoint_url": settings.endpoint_url,
        "region": settings.region,
        "bucket": bucket,
        "topic_arn": topic_arn,
        "alert_topic_arn": alert_arn,
        "manifest_events_queue_url": events_url,
        "manifest_events_queue_arn": events_arn,
        "host_queues": host_queues,
        "signing_key_arn": signing_key(settings.client("kms"), topology.signing_key_alias()),
    }


def sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """Messages from ReceiveMessage, shaped as Lambda's SQS event source delivers them."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": m.get("MessageAttributes", {}),
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for m in messages
        ]
    }


def scheduled_event(region: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": region,
        "resources": [],
        "detail": {},
    }


def load_handler(info: dict[str, Any]) -> Any:
    """The real Lambda handler, configured as a deployed function would be (from the provisioned resources)."""
    from dagsync.lambdas import validator as handler

    handler.configure(handler.Settings(
        bucket=info["bucket"], topic_arn=info["topic_arn"], alert_topic_arn=info["alert_topic_arn"],
        signing_key_id=info["signing_key_arn"], endpoint_url=info["endpoint_url"], emit_metrics=False,
    ))
    return handler


@dataclass
class RunnerStats:
    invocations: int = 0
    records: int = 0
    failures: int = 0


class EventSourceRunner(threading.Thread):
    """Stands in for Lambda's SQS event source mapping and the EventBridge rate(1 minute) rule."""

    def __init__(self, settings: AwsSettings, info: dict[str, Any], *, schedule_interval: float) -> None:
        super().__init__(name="event-source", daemon=True)
        self.sqs = settings.client("sqs")
        self.info = info
        self.region = settings.region
        self.schedule_interval = schedule_interval
        self.handler = load_handler(info)
        self.stop_event = threading.Event()
        self.stats = RunnerStats()

    def run(self) -> None:
        next_tick = time.monotonic() + self.schedule_interval
        while not self.stop_event.is_set():
            try:
                self._poll_once()
                if time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + self.schedule_interval
                    self._invoke(scheduled_event(self.region))
            except Exception:  # the event source keeps going, as Lambda's does
                log.exception("event source iteration failed")
                self.stop_event.wait(1.0)

    def _poll_once(self) -> None:
        resp = self.sqs.receive_message(
            QueueUrl=self.info["manifest_events_queue_url"],
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = resp.get("Messages", [])
        if not messages:
            return
        result = self._invoke(sqs_event(messages, self.info["manifest_events_queue_arn"], self.region))
        failed = {f["itemIdentifier"] for f in (result or {}).get("batchItemFailures", [])}
        self.stats.records += len(messages)
        self.stats.failures += len(failed)
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self.sqs.delete_message_batch(
                QueueUrl=self.info["manifest_events_queue_url"],
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )

    def _invoke(self, event: dict[str, Any]) -> Any:
        self.stats.invocations += 1
        return self.handler.lambda_handler(event, InvocationContext())

    def stop(self) -> None:
        self.stop_event.set()


def write_trusted_key(settings: AwsSettings, key_arn: str, path: Path) -> Path:
    """The public half of the signing key as a PEM file at `path` (what agents pin with DAGSYNC_TRUSTED_KEYS)."""
    pem = signatures.public_pem(kms.public_key(settings.client("kms"), key_arn))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, pem)
    return path


class LocalStack:
    """A moto server on loopback, provisioned from `Topology`, with the event-source runner. The public key of its
    release signing key is written to `trusted_keys_file`."""

    def __init__(self, *, trusted_keys_file: Path, port: int = 0, hosts: tuple[str, ...] = default_hosts(2),
                 schedule_interval: float = 60.0, region: str = constants.DEFAULT_REGION,
                 bucket: str = constants.LOCAL_BUCKET) -> None:
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self.topology = Topology(prefix=constants.LOCAL_PREFIX, hosts=hosts)
        self.schedule_interval = schedule_interval
        self.region = region
        self.bucket = bucket
        self.trusted_keys_file = trusted_keys_file
        self.runner: EventSourceRunner | None = None
        self.info: dict[str, Any] = {}

    def start(self) -> dict[str, Any]:
        self.server.start()
        host, port = self.server.get_host_and_port()
        settings = AwsSettings(region=self.region, endpoint_url=f"http://{host}:{port}")
        self.info = provision(settings, self.topology, self.bucket)
        self.info["trusted_keys_file"] = str(write_trusted_key(settings, self.info["signing_key_arn"],
                                                               self.trusted_keys_file))
        self.runner = EventSourceRunner(settings, self.info, schedule_interval=self.schedule_interval)
        self.runner.start()
        return self.info

    def stop(self) -> None:
        if self.runner:
            self.runner.stop()
            self.runner.join(timeout=10)
        self.server.stop()
