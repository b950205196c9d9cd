"""The validator: manifest-events queue fed by S3, the Lambda, its SQS event source and the schedule."""

from __future__ import annotations

from typing import cast

from aws_cdk import CfnElement, Duration, RemovalPolicy, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sns as sns
from constructs import Construct

from dagsync.core import constants, keys
from dagsync.core.topology import Topology
from infra.nag import acknowledge, wildcard_resource
from infra.queues import queue_with_dlq

HANDLER = "dagsync.lambdas.validator.lambda_handler"
TIMEOUT = Duration.seconds(60)
MEMORY_MB = 512
BATCH_SIZE = 10
# The least SQS allows. Correctness comes from IfMatch on release.json; reserved concurrency 1 would
# throttle SQS deliveries into the dead-letter queue instead.
MAX_CONCURRENCY = 2
READ_KEYS = (keys.MANIFEST_KEY, "catalog/*", "projects/*", keys.RELEASE_KEY, f"{keys.RELEASES_PREFIX}*", "status/*")
WRITE_KEYS = (keys.RELEASE_KEY, f"{keys.RELEASES_PREFIX}*", "status/*")
# Topology spells S3 event types as S3 does; jsii enums only by member name.
S3_EVENT_TYPES = {"s3:ObjectCreated:*": s3.EventType.OBJECT_CREATED}
# CDK's singleton that applies S3 bucket notifications (a custom resource).
NOTIFICATIONS_HANDLER_ID = "BucketNotificationsHandler050a0587b7544547bf325f094a3db834"


class ValidatorFunction(Construct):
    """The gate's Lambda (dagsync.lambdas.validator) with its event source, schedule and grants."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        topology: Topology,
        bucket: s3.Bucket,
        changes_topic: sns.ITopic,
        alerts_topic: sns.ITopic,
        alerts_key: kms.IKey,
        code: lambda_.Code,
        retention_days: int,
    ) -> None:
        super().__init__(scope, id_)
        pair = queue_with_dlq(
            self,
            "ManifestEvents",
            queue_name=topology.manifest_events_queue,
            dlq_name=topology.manifest_events_dlq,
            visibility_timeout=Duration.seconds(TIMEOUT.to_seconds() * 6),  # AWS guidance: 6x the timeout
            retention=Duration.days(1),  # events are hints; the schedule re-checks every minute anyway
        )
        self.queue, self.dlq = pair.queue, pair.dlq
        rule = topology.notification
        for event_type in rule.events:
            bucket.add_event_notification(
                S3_EVENT_TYPES[event_type], s3n.SqsDestination(self.queue),
                s3.NotificationKeyFilter(prefix=rule.prefix, suffix=rule.suffix),
            )
        self._acknowledge_notifications_handler()

        self.log_group = logs.LogGroup(self, "Logs", removal_policy=RemovalPolicy.DESTROY)
        cast(logs.CfnLogGroup, self.log_group.node.default_child).retention_in_days = retention_days
        self.role = iam.Role(
            self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="dagsync validator: read the manifest and catalogs, write release.json and status/",
        )
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=lambda_.Runtime.PYTHON_3_12,
            architecture=lambda_.Architecture.X86_64,
            handler=HANDLER,
            code=code,
            timeout=TIMEOUT,
            memory_size=MEMORY_MB,
            role=self.role,
            log_group=self.log_group,
            tracing=lambda_.Tracing.ACTIVE,
            environment={
                constants.ENV_BUCKET: bucket.bucket_name,
                constants.ENV_TOPIC_ARN: changes_topic.topic_arn,
                constants.ENV_ALERT_TOPIC_ARN: alerts_topic.topic_arn,
                "POWERTOOLS_SERVICE_NAME": constants.SERVICE_NAME,
                "POWERTOOLS_METRICS_NAMESPACE": constants.METRICS_NAMESPACE,
            },
        )
        self._grant(bucket, changes_topic, alerts_topic, alerts_key)
        self.function.add_event_source(
            sources.SqsEventSource(
                self.queue, batch_size=BATCH_SIZE, report_batch_item_failures=True, max_concurrency=MAX_CONCURRENCY
            )
        )
        self.schedule = events.Rule(
            self,
            "SafetyNet",
            description="dagsync: re-check the current manifest even when an S3 event was lost",
            schedule=events.Schedule.rate(Duration.minutes(constants.SCHEDULE_RATE_MINUTES)),
            # The next tick repeats the same check: retrying an old one only adds load.
            targets=[targets.LambdaFunction(self.function, retry_attempts=0, max_event_age=Duration.minutes(1))],
        )

    def _grant(
        self, bucket: s3.Bucket, changes_topic: sns.ITopic, alerts_topic: sns.ITopic, alerts_key: kms.IKey
    ) -> None:
        self.log_group.grant_write(self.role)
        self.role.add_to_principal_policy(iam.PolicyStatement(
            actions=["s3:GetObject"], resources=[bucket.arn_for_objects(k) for k in READ_KEYS]))
        self.role.add_to_principal_policy(iam.PolicyStatement(
            actions=["s3:PutObject"], resources=[bucket.arn_for_objects(k) for k in WRITE_KEYS]))
        self.role.add_to_principal_policy(iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket.bucket_arn]))
        changes_topic.grant_publish(self.role)
        # Not alerts_topic.grant_publish: that grants kms:GenerateDataKey*; publishing needs exactly these two.
        self.role.add_to_principal_policy(iam.PolicyStatement(actions=["sns:Publish"],
                                                              resources=[alerts_topic.topic_arn]))
        alerts_key.grant(self.role, "kms:GenerateDataKey", "kms:Decrypt")
        bucket_resource = cast(CfnElement, bucket.node.default_child)
        for suffix in sorted({k for k in (*READ_KEYS, *WRITE_KEYS) if k.endswith("*")}):
            wildcard_resource(self.role, bucket_resource, f"/{suffix}",
                              f"The validator reads and writes only under {suffix}: keys are per project and "
                              "per status document, named at run time.")
        acknowledge(
            self.role, "AwsSolutions-IAM5[Resource::*]",
            "X-Ray PutTraceSegments/PutTelemetryRecords (added by active tracing) support no resource-level "
            "permissions.",
        )
        wildcard_resource(self.role, cast(CfnElement, self.log_group.node.default_child), ":*",
                          "Log streams are created at run time inside the function's own log group.")
        acknowledge(
            self.function, "AwsSolutions-L1",
            "Pinned to Python 3.12: the bundle is built from cp312 manylinux wheels and tested under 3.12.",
        )

    def _acknowledge_notifications_handler(self) -> None:
        handler = Stack.of(self).node.try_find_child(NOTIFICATIONS_HANDLER_ID)
        if handler is None:
            raise RuntimeError("CDK's bucket-notifications handler was not found; its id changed in aws-cdk-lib")
        acknowledge(
            handler, "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AWSLambdaBasicExecutionRole]",
            "CDK's own custom resource that applies S3 bucket notifications; its role is not configurable.",
        )
        acknowledge(
            handler, "AwsSolutions-IAM5[Resource::*]",
            "CDK's bucket-notifications custom resource calls s3:PutBucketNotification for buckets it is given; "
            "the policy is generated by aws-cdk-lib.",
        )
