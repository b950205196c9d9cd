"""ValidatorFunction on a bare stack: S3 -> queue (DLQ) filtered to the manifest key, Lambda, SQS event source with
partial batch responses and max concurrency 2, rate(1 minute) safety net, least-privilege grants."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Match, Template

from dagsync.core import constants, keys
from dagsync.core.topology import Topology
from infra.validator import HANDLER, MAX_CONCURRENCY, ValidatorFunction
from tests.infrastructure.helpers import bare_stack, dummy_code

TOPOLOGY = Topology(prefix="dagsync-t", hosts=("a",))


def template() -> Template:
    stack = bare_stack()
    key = kms.Key(stack, "AlertsKey")
    ValidatorFunction(
        stack, "Validator", topology=TOPOLOGY, bucket=s3.Bucket(stack, "Bucket"),
        changes_topic=sns.Topic(stack, "Changes"), alerts_topic=sns.Topic(stack, "Alerts", master_key=key),
        alerts_key=key, code=dummy_code(), retention_days=7,
    )
    return Template.from_stack(stack)


def role_statements(t: Template) -> list[dict[str, Any]]:
    policies = t.find_resources("AWS::IAM::Policy")
    return [s for p in policies.values() for s in p["Properties"]["PolicyDocument"]["Statement"]]


def actions_on(statements: list[dict[str, Any]], action: str) -> str:
    found = [s for s in statements if action in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])]
    return json.dumps([s["Resource"] for s in found])


def test_the_manifest_key_alone_feeds_the_events_queue() -> None:
    t = template()
    t.has_resource_properties("AWS::SQS::Queue", {"QueueName": TOPOLOGY.manifest_events_queue,
                                                  "RedrivePolicy": Match.object_like({"maxReceiveCount": 5})})
    t.has_resource_properties("AWS::SQS::Queue", {"QueueName": TOPOLOGY.manifest_events_dlq})
    t.has_resource_properties("Custom::S3BucketNotifications", {"NotificationConfiguration": {"QueueConfigurations": [
        {"Events": list(constants.MANIFEST_EVENT_TYPES), "QueueArn": Match.any_value(), "Filter": {"Key": {
            "FilterRules": Match.array_equals([{"Name": "suffix", "Value": keys.MANIFEST_KEY},
                                               {"Name": "prefix", "Value": keys.MANIFEST_KEY}])}}}]}})


def test_the_function_runs_the_bundled_handler_with_its_environment() -> None:
    template().has_resource_properties("AWS::Lambda::Function", {
        "Runtime": "python3.12",
        "Handler": HANDLER,
        "TracingConfig": {"Mode": "Active"},
        "Environment": {"Variables": {
            constants.ENV_BUCKET: Match.any_value(),
            constants.ENV_TOPIC_ARN: Match.any_value(),
            constants.ENV_ALERT_TOPIC_ARN: Match.any_value(),
            "POWERTOOLS_SERVICE_NAME": constants.SERVICE_NAME,
            "POWERTOOLS_METRICS_NAMESPACE": constants.METRICS_NAMESPACE,
        }},
    })


def test_sqs_event_source_reports_batch_failures_with_the_least_concurrency() -> None:
    t = template()
    t.has_resource_properties("AWS::Lambda::EventSourceMapping", {
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "ScalingConfig": {"MaximumConcurrency": MAX_CONCURRENCY},
    })
    assert MAX_CONCURRENCY == 2
    functions = t.find_resources("AWS::Lambda::Function")
    assert all("ReservedConcurrentExecutions" not in f["Properties"] for f in functions.values())


def test_a_one_minute_schedule_is_the_safety_net() -> None:
    template().has_resource_properties("AWS::Events::Rule", {
        "ScheduleExpression": f"rate({constants.SCHEDULE_RATE_MINUTES} minute)",
        "Targets": [Match.object_like({"RetryPolicy": {"MaximumRetryAttempts": 0, "MaximumEventAgeInSeconds": 60}})],
    })


def test_the_role_reads_and_writes_only_what_the_validator_needs() -> None:
    statements = role_statements(template())
    reads, writes = actions_on(statements, "s3:GetObject"), actions_on(statements, "s3:PutObject")
    for key in (keys.MANIFEST_KEY, "/catalog/*", "/projects/*", keys.RELEASE_KEY, "/status/*"):
        assert key in reads
    assert keys.RELEASE_KEY in writes and "/status/*" in writes
    assert "manifest.yaml" not in writes and "projects/" not in writes and "catalog/" not in writes
    assert actions_on(statements, "s3:DeleteObject") == "[]"
    assert actions_on(statements, "s3:ListBucket") != "[]"
    assert actions_on(statements, "sns:Publish").count("\"Ref\"") == 2  # the changes and the alerts topic
