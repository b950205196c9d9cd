"""The one way dagsync declares a queue: SSE-SQS, TLS-only, with its own dead-letter queue."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from dagsync.core import constants

DLQ_RETENTION = Duration.days(14)


@dataclass(frozen=True)
class QueuePair:
    queue: sqs.Queue
    dlq: sqs.Queue


def queue_with_dlq(
    scope: Construct,
    id_: str,
    *,
    queue_name: str,
    dlq_name: str,
    visibility_timeout: Duration,
    retention: Duration,
) -> QueuePair:
    dlq = sqs.Queue(
        scope,
        f"{id_}Dlq",
        queue_name=dlq_name,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=DLQ_RETENTION,
        removal_policy=RemovalPolicy.DESTROY,
    )
    queue = sqs.Queue(
        scope,
        id_,
        queue_name=queue_name,
        # SSE-SQS, not KMS: S3 and SNS can deliver to it without a customer key policy, at no cost.
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        visibility_timeout=visibility_timeout,
        retention_period=retention,
        dead_letter_queue=sqs.DeadLetterQueue(queue=dlq, max_receive_count=constants.MAX_RECEIVE_COUNT),
        removal_policy=RemovalPolicy.DESTROY,
    )
    return QueuePair(queue=queue, dlq=dlq)
