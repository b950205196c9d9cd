"""One dagsync environment: composes the constructs, wires them together, and prints what hosts need."""

from __future__ import annotations

import re
from typing import Any

from aws_cdk import CfnOutput, Duration, Stack, Tags
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from dagsync.core import constants
from dagsync.core.topology import Topology
from infra.access import AgentAccess, PublisherAccess
from infra.alarms import Alarms
from infra.alerts import AlertTopic
from infra.bundling import validator_code
from infra.config import EnvironmentConfig
from infra.fanout import FanOut
from infra.signing import ReleaseSigningKeys
from infra.storage import Storage
from infra.validator import ValidatorFunction

# A host is "silent" after this many reconcile intervals without a single poll (and never under 15 min).
SILENT_AFTER_INTERVALS = 5
MIN_SILENCE = Duration.minutes(15)


def output_id(host: str, what: str) -> str:
    return "Host" + "".join(part.capitalize() for part in re.split(r"[^a-z0-9]+", host)) + what


def signing_output_id(name: str) -> str:
    return "ReleaseSigningKey" + "".join(part.capitalize() for part in re.split(r"[^a-z0-9]+", name)) + "Arn"


class DagSyncStack(Stack):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: EnvironmentConfig,
        code: lambda_.Code | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id_, **kwargs)
        Tags.of(self).add("project", "dagsync")
        Tags.of(self).add("environment", config.name)
        self.topology = Topology(prefix=config.prefix, hosts=config.hosts)

        self.storage = Storage(self, "Storage", retention_days=config.retention_days,
                               release_history_days=config.release_history_days, retain_data=config.retain_data)
        self.alerts = AlertTopic(self, "Alerts", topic_name=self.topology.alerts_topic, email=config.alarm_email)
        self.fanout = FanOut(self, "FanOut", topology=self.topology)
        self.validator = ValidatorFunction(
            self,
            "Validator",
            topology=self.topology,
            bucket=self.storage.bucket,
            changes_topic=self.fanout.topic,
            alerts_topic=self.alerts.topic,
            alerts_key=self.alerts.key,
            code=code or validator_code(),
            retention_days=config.retention_days,
        )
        self.signing = ReleaseSigningKeys(self, "ReleaseSigning", topology=self.topology, names=config.signing_keys,
                                          active=config.signing_key, signer=self.validator.role)
        self.validator.function.add_environment(constants.ENV_SIGNING_KEY, self.signing.active.key_arn)
        if self.signing.others:
            self.validator.function.add_environment(constants.ENV_TRUSTED_KEY_IDS,
                                                    ",".join(k.key_arn for k in self.signing.others))
        self.publisher = PublisherAccess(self, "Publisher", bucket=self.storage.bucket)
        self.agents = {
            host: AgentAccess(self, f"Agent-{host}", bucket=self.storage.bucket, host=host,
                              queue=self.fanout.queue(host), signing_keys=list(self.signing.keys.values()))
            for host in config.hosts
        }
        silence = max(config.reconcile_interval_s * SILENT_AFTER_INTERVALS, MIN_SILENCE.to_seconds())
        self.alarms = Alarms(
            self,
            "Alarms",
            topic=self.alerts.topic,
            dead_letter_queues={
                self.topology.manifest_events_dlq: self.validator.dlq,
                **{self.topology.host_dlq(h): pair.dlq for h, pair in self.fanout.hosts.items()},
            },
            validator=self.validator.function,
            host_queues={h: pair.queue for h, pair in self.fanout.hosts.items()},
            host_silence=Duration.seconds(silence),
        )
        self._outputs(config)

    def _outputs(self, config: EnvironmentConfig) -> None:
        bucket = self.storage.bucket.bucket_name
        CfnOutput(self, "BucketName", value=bucket, description="Artifact bucket (DAGSYNC_BUCKET)")
        CfnOutput(self, "ChangesTopicArn", value=self.fanout.topic.topic_arn, description="Change events")
        CfnOutput(self, "AlertsTopicArn", value=self.alerts.topic.topic_arn, description="Alarms and rejections")
        CfnOutput(self, "PublisherRoleArn", value=self.publisher.role.role_arn, description="Role for CI")
        CfnOutput(self, "PublisherPolicyArn", value=self.publisher.policy.managed_policy_arn,
                  description="Policy for CI (attach to your own CI role instead of assuming ours)")
        for name, key in self.signing.keys.items():
            active = " (the validator signs with it)" if key is self.signing.active else ""
            CfnOutput(self, signing_output_id(name), value=key.key_arn,
                      description=f"Release signing key {name}{active}: pin its public key on every host as "
                                  f"{constants.trusted_key_path(name)} (docs/infrastructure.md)")
        trusted = ",".join(constants.trusted_key_path(name) for name in self.signing.keys)
        for host, agent in self.agents.items():
            queue_url = self.fanout.queue(host).queue_url
            CfnOutput(self, output_id(host, "QueueUrl"), value=queue_url, description=f"Queue of host {host}")
            CfnOutput(self, output_id(host, "PolicyArn"), value=agent.policy.managed_policy_arn,
                      description=f"Attach to the instance / pod role of host {host}")
            CfnOutput(
                self,
                output_id(host, "AgentConfig"),
                description=f"Environment for dagsync-agent on {host}",
                value=" ".join(
                    f"{k}={v}"
                    for k, v in (
                        (constants.ENV_BUCKET, bucket),
                        (constants.ENV_QUEUE_URL, queue_url),
                        (constants.ENV_HOST, host),
                        (constants.ENV_REGION, self.region),
                        (constants.ENV_DAGS_DIR, config.dags_dir),
                        (constants.ENV_RECONCILE_INTERVAL, f"{config.reconcile_interval_s:g}"),
                        (constants.ENV_TRUSTED_KEYS, trusted),
                    )
                ),
            )
