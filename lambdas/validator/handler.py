"""Validator Lambda: Powertools wiring around dagsync.validator. SQS batches and the schedule
take the same path: validate the CURRENT manifest once per invocation."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field

from dagsync import constants
from dagsync.aws import AwsSettings
from dagsync.models import ChangeEvent, Rejection
from dagsync.store import S3Store
from dagsync.validator import Outcome, Validator

logger = Logger(service=constants.SERVICE_NAME)
tracer = Tracer(service=constants.SERVICE_NAME)
metrics = Metrics(namespace=constants.METRICS_NAMESPACE, service=constants.SERVICE_NAME)
processor = BatchProcessor(event_type=EventType.SQS)


class Settings(BaseModel):
    """Environment, validated at cold start."""

    bucket: str = Field(min_length=3)
    topic_arn: str = Field(min_length=1)
    alert_topic_arn: str | None = None
    endpoint_url: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        return cls(
            bucket=env.get(constants.ENV_BUCKET, ""),
            topic_arn=env.get(constants.ENV_TOPIC_ARN, ""),
            alert_topic_arn=env.get(constants.ENV_ALERT_TOPIC_ARN) or None,
            endpoint_url=env.get(constants.ENV_ENDPOINT_URL) or None,
        )


class Runtime:
    """Clients and the validator, built once per container."""

    def __init__(self, settings: Settings) -> None:
        aws = AwsSettings.resolve(endpoint_url=settings.endpoint_url)
        self.sns = aws.client("sns")
        self.settings = settings
        self.validator = Validator(
            S3Store(aws.client("s3"), settings.bucket), on_release=self.announce, on_rejection=self.alert
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


_runtime: Runtime | None = None


def runtime() -> Runtime:
    global _runtime
    if _runtime is None:
        _runtime = Runtime(Settings.from_env(os.environ))
    return _runtime


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


_once = _OncePerInvocation()


@tracer.capture_method
def validate(*, recheck_rejected: bool = False) -> Outcome:
    outcome = runtime().validator.run(recheck_rejected=recheck_rejected)
    metrics.add_metric(name={"accepted": "Releases", "rejected": "Rejections", "noop": "Noops"}[outcome.status],
                       unit=MetricUnit.Count, value=1)
    log = logger.warning if outcome.status == "rejected" else logger.info
    log("validation finished", extra={"outcome": outcome.status, "detail": outcome.detail,
                                      "sequence": outcome.sequence, "changed": outcome.changed})
    return outcome


def record_handler(record: SQSRecord) -> None:
    body = json.loads(record.body) if record.body.startswith("{") else {}
    if body.get("Event") == "s3:TestEvent":
        return
    _once()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    global _once
    _once = _OncePerInvocation()
    if event.get("source") == "aws.events" or event.get("detail-type") == "Scheduled Event":
        # The safety net also looks again at a rejected manifest: what it lacked may have been published since.
        outcome = validate(recheck_rejected=True)
        return {"outcome": outcome.status, "detail": outcome.detail}
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(response)
