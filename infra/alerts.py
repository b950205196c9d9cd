"""The alert topic: CloudWatch alarms and the validator's rejection notices, optionally to an e-mail."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from constructs import Construct


class AlertTopic(Construct):
    def __init__(self, scope: Construct, id_: str, *, topic_name: str, email: str | None) -> None:
        super().__init__(scope, id_)
        # A customer-managed key: CloudWatch alarms cannot publish to a topic under the AWS-managed SNS key.
        self.key = kms.Key(
            self,
            "Key",
            description=f"Encrypts the {topic_name} SNS topic",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.key.grant(iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*")
        self.topic = sns.Topic(
            self, "Topic", topic_name=topic_name, display_name="dagsync alerts", master_key=self.key, enforce_ssl=True
        )
        self.topic.grant_publish(iam.ServicePrincipal("cloudwatch.amazonaws.com"))
        if email:
            self.topic.add_subscription(subs.EmailSubscription(email))
