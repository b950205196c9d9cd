"""The change topic and one queue per host, subscribed with raw message delivery."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from dagsync.core.topology import Topology
from infra.queues import QueuePair, queue_with_dlq

# AWS-managed key: free, and the only publisher (the validator) goes through SNS, which the key policy allows.
SNS_MANAGED_KEY = "alias/aws/sns"
# A change event only says "sync now"; an agent that was away reconciles from release.json at start-up.
HOST_QUEUE_RETENTION = Duration.days(1)
HOST_QUEUE_VISIBILITY = Duration.seconds(60)


class FanOut(Construct):
    def __init__(self, scope: Construct, id_: str, *, topology: Topology) -> None:
        super().__init__(scope, id_)
        self.topic = sns.Topic(
            self,
            "Changes",
            topic_name=topology.changes_topic,
            display_name="dagsync changes",
            master_key=kms.Alias.from_alias_name(self, "SnsManagedKey", SNS_MANAGED_KEY),
            enforce_ssl=True,
        )
        self.hosts: dict[str, QueuePair] = {}
        for host in topology.hosts:
            pair = queue_with_dlq(
                self,
                f"Host-{host}",
                queue_name=topology.host_queue(host),
                dlq_name=topology.host_dlq(host),
                visibility_timeout=HOST_QUEUE_VISIBILITY,
                retention=HOST_QUEUE_RETENTION,
            )
            self.topic.add_subscription(subs.SqsSubscription(pair.queue, raw_message_delivery=True))
            self.hosts[host] = pair

    def queue(self, host: str) -> sqs.Queue:
        return self.hosts[host].queue
