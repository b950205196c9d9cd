"""Validator Lambda: Powertools wiring around `dagsync.gate`. SQS batches and the schedule take the same path:
validate the CURRENT manifest once per invocation.

The runtime (clients and the gate) is built once per container from `Settings`: from the environment at cold
start, or explicitly with `configure(settings)` (the local stack and the tests), which also resets it."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from dagsync.core import constants, kms
from dagsync.core.aws import AwsSettings
from dagsync.core.kms import KmsSigner
from dagsync.core.models import ChangeEvent, Rejection
from dagsync.core.signatures import TrustedKeys
from dagsync.core.store import S3Store
from dagsync.gate.validator import Outcome, Validator

# stderr: Lambda sends it to CloudWatch like stdout, and the local stack keeps stdout for its ready line.
logger = Logger(service=constants.SERVICE_NAME, stream=sys.stderr)
tracer = Tracer(service=constants.SERVICE_NAME)
metrics = Metrics(namespace=constants.METRICS_NAMESPACE, service=constants.SERVICE_NAME)
processor = BatchProcessor(event_type=EventType.SQS)


class Settings(BaseModel):
    """What the function needs, validated once (at cold start, or when given to `configure`)."""

    model_config = ConfigDict(frozen=True)

    bucket: str = Field(min_length=3)
    topic_arn: str = Field(min_length=1)
    signing_key_id: str = Field(min_length=1)  # the KMS key every release is signed with
    trusted_key_ids: tuple[str, ...] = ()  # other KMS keys whose roots it builds on (the one before a rotation)
    alert_topic_arn: str | None = None
    endpoint_url: str | None = None
    emit_metrics: bool = True  # CloudWatch EMF lines on stdout; the local stack has no CloudWatch

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        return cls(
            bucket=env.get(constants.ENV_BUCKET, ""),
            topic_arn=env.get(constants.ENV_TOPIC_ARN, ""),
            signing_key_id=env.get(constants.ENV_SIGNING_KEY, ""),
            trusted_key_ids=tuple(k.strip() for k in env.get(constants.ENV_TRUSTED_KEY_IDS, "").split(",")
                                  if k.strip()),
            alert_topic_arn=env.get(constants.ENV_ALERT_TOPIC_ARN) or None,
            endpoint_url=env.get(constants.ENV_ENDPOINT_URL) or None,
        )


class Runtime:
    """Clients, the signer and the gate, built once per container. The public keys are read from KMS here: when KMS
    does not answer, the invocation fails and is retried (SQS redelivery, the next scheduled run), and release.json
    stays as it is."""

    def __init__(self, settings: Settings) -> None:
        aws = AwsSettings.resolve(endpoint_url=settings.endpoint_url)
        self.sns = aws.client("sns")
        self.settings = settings
        kms_client = aws.client("kms")
        signer = KmsSigner(kms_client, settings.signing_key_id)
        trusted = [signer.public_key, *(kms.public_key(kms_client, k) for k in settings.trusted_key_ids)]
        self.validator = Validator(
            S3Store(aws.client("s3"), settings.bucket), on_release=self.announce, on_rejection=self.alert,
            signer=signer, verifier=TrustedKeys(trusted),
        )

    def announce(self, event: ChangeEvent) -> None:
        self.sns.publish(TopicArn=self.settings.topic_arn, Message=event.model_dump_json())

    def alert(self, rejection: Rejection) -> None:
        if self.settings.alert_topic_arn:
            self.sns.publish(
                TopicArn=self.settings.alert_topic_arn,
                Subject="dagsync: manifest rejected",
                Message=f"The manifest was rejected and no host changed.\n\n{rejection.reason}",
            )


class _Container:
    """The one runtime of this container: built lazily from the environment, or given by `configure`."""

    runtime: Runtime | None = None


def configure(settings: Settings | None) -> Runtime | None:
    """Use these settings from now on (None: read the environment again at the next invocation)."""
    _Container.runtime = Runtime(settings) if settings is not None else None
    return _Container.runtime


def runtime() -> Runtime:
    if _Container.runtime is None:
        _Container.runtime = Runtime(Settings.from_env(os.environ))
    return _Container.runtime


class _OncePerInvocation:
    """Every record in a batch asks the same question (is the current manifest released?); answer it once."""

    def __init__(self) -> None:
        self.result: Outcome | Exception | None = None

    def __call__(self) -> Outcome:
        if self.result is None:
            try:
                self.result = validate()
            except Exception as exc:
                self.result = exc
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


@tracer.capture_method
def validate(*, recheck_rejected: bool = False) -> Outcome:
    outcome = runtime().validator.run(recheck_rejected=recheck_rejected)
    metrics.add_metric(name={"accepted": "Releases", "rejected": "Rejections", "noop": "Noops"}[outcome.status],
                       unit=MetricUnit.Count, value=1)
    log = logger.warning if outcome.status == "rejected" else logger.info
    log("validation finished", extra={"outcome": outcome.status, "detail": outcome.detail,
                                      "sequence": outcome.sequence, "changed": outcome.changed})
    return outcome


def _is_s3_test_event(record: SQSRecord) -> bool:
    body = json.loads(record.body) if record.body.startswith("{") else {}
    return bool(body.get("Event") == "s3:TestEvent")


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        if event.get("source") == "aws.events" or event.get("detail-type") == "Scheduled Event":
            # The safety net also looks again at a rejected manifest: what it lacked may have been published since.
            outcome = validate(recheck_rejected=True)
            return {"outcome": outcome.status, "detail": outcome.detail}
        once = _OncePerInvocation()

        def record_handler(record: SQSRecord) -> None:
            if not _is_s3_test_event(record):
                once()

        return dict(process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        ))
    finally:
        current = _Container.runtime
        if current is None or current.settings.emit_metrics:
            metrics.flush_metrics()
        else:
            metrics.clear_metrics()
