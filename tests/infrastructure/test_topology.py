"""The CDK stack, dagsync.core.topology.Topology and the local stack (dagsync.local.stack.provision) agree on queue
names, topic names, raw-delivery subscriptions, redrive, the manifest notification filter and the release signing
key's alias."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from dagsync.core.aws import AwsSettings
from dagsync.core.constants import MAX_RECEIVE_COUNT
from dagsync.core.topology import NotificationRule, Subscription, Topology
from tests.infrastructure.helpers import env_config, logical_id, resources, stack_template
from tests.support.moto import LoopbackMoto

HOSTS = ("scheduler", "dag-processor", "worker-1", "worker-2")


@dataclass(frozen=True)
class Wiring:
    """What both stacks must agree on, by physical name."""

    queues: frozenset[str]
    topics: frozenset[str]
    subscriptions: frozenset[Subscription]
    redrive: frozenset[tuple[str, str, int]]  # (queue, dead-letter queue, max receives)
    notification: NotificationRule
    signing_keys: frozenset[str]  # aliases of the release signing keys


def expected(topology: Topology) -> Wiring:
    return Wiring(
        queues=frozenset(topology.queues) | {topology.manifest_events_dlq, *map(topology.host_dlq, topology.hosts)},
        topics=frozenset(topology.topics),
        subscriptions=frozenset(topology.subscriptions),
        redrive=frozenset(
            {(topology.manifest_events_queue, topology.manifest_events_dlq, MAX_RECEIVE_COUNT)}
            | {(topology.host_queue(h), topology.host_dlq(h), MAX_RECEIVE_COUNT) for h in topology.hosts}
        ),
        notification=topology.notification,
        signing_keys=frozenset({topology.signing_key_alias()}),
    )


def from_template(template: dict[str, Any]) -> Wiring:
    queues = {k: v["Properties"]["QueueName"] for k, v in resources(template, "AWS::SQS::Queue").items()}
    topics = {k: v["Properties"]["TopicName"] for k, v in resources(template, "AWS::SNS::Topic").items()}
    subscriptions = {
        Subscription(topic=topics[logical_id(p["TopicArn"])], queue=queues[logical_id(p["Endpoint"])],
                     raw_message_delivery=bool(p.get("RawMessageDelivery", False)))
        for p in (r["Properties"] for r in resources(template, "AWS::SNS::Subscription").values())
        if p["Protocol"] == "sqs"
    }
    redrive = {
        (queues[k], queues[logical_id(v["Properties"]["RedrivePolicy"]["deadLetterTargetArn"])],
         int(v["Properties"]["RedrivePolicy"]["maxReceiveCount"]))
        for k, v in resources(template, "AWS::SQS::Queue").items() if "RedrivePolicy" in v["Properties"]
    }
    (custom,) = resources(template, "Custom::S3BucketNotifications").values()
    (config,) = custom["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    aliases = {a["Properties"]["AliasName"] for a in resources(template, "AWS::KMS::Alias").values()}
    return Wiring(frozenset(queues.values()), frozenset(topics.values()), frozenset(subscriptions),
                  frozenset(redrive), _rule(queues[logical_id(config["QueueArn"])], config), frozenset(aliases))


def _rule(queue: str, config: dict[str, Any]) -> NotificationRule:
    filters = {r["Name"].lower(): r["Value"] for r in config["Filter"]["Key"]["FilterRules"]}
    return NotificationRule(queue=queue, events=tuple(config["Events"]), prefix=filters.get("prefix", ""),
                            suffix=filters.get("suffix", ""))


def test_the_cdk_stack_declares_exactly_the_topology() -> None:
    # Given a stack for four hosts and the Topology it was built from
    stack, template = stack_template(env_config(name="topo", hosts=HOSTS))
    # When both are reduced to names and wiring / Then they are the same
    assert from_template(template.to_json()) == expected(stack.topology)
    assert stack.topology == Topology(prefix="dagsync-topo", hosts=HOSTS)


# --- the local stack (dagsync local up) -----------------------------------------------------------------

@pytest.fixture()
def moto_endpoint() -> Iterator[str]:
    with LoopbackMoto() as moto:
        yield moto.endpoint


def from_local(settings: AwsSettings, bucket: str) -> Wiring:
    sqs, sns, s3 = settings.client("sqs"), settings.client("sns"), settings.client("s3")
    arn_to_queue: dict[str, str] = {}
    redrive = set()
    for url in sqs.list_queues().get("QueueUrls", []):
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        name = attrs["QueueArn"].rsplit(":", 1)[1]
        arn_to_queue[attrs["QueueArn"]] = name
        if "RedrivePolicy" in attrs:
            policy = json.loads(attrs["RedrivePolicy"])
            redrive.add((name, policy["deadLetterTargetArn"].rsplit(":", 1)[1], int(policy["maxReceiveCount"])))
    topics = {t["TopicArn"]: t["TopicArn"].rsplit(":", 1)[1] for t in sns.list_topics()["Topics"]}
    subscriptions = set()
    for sub in sns.list_subscriptions()["Subscriptions"]:
        attrs = sns.get_subscription_attributes(SubscriptionArn=sub["SubscriptionArn"])["Attributes"]
        subscriptions.add(Subscription(topic=topics[sub["TopicArn"]], queue=arn_to_queue[sub["Endpoint"]],
                                       raw_message_delivery=attrs.get("RawMessageDelivery") == "true"))
    (config,) = s3.get_bucket_notification_configuration(Bucket=bucket)["QueueConfigurations"]
    aliases = {a["AliasName"] for a in settings.client("kms").list_aliases()["Aliases"]
               if not a["AliasName"].startswith("alias/aws/")}
    return Wiring(frozenset(arn_to_queue.values()), frozenset(topics.values()), frozenset(subscriptions),
                  frozenset(redrive), _rule(arn_to_queue[config["QueueArn"]], config), frozenset(aliases))


def test_the_local_stack_provisions_what_the_cdk_stack_declares(moto_endpoint: str) -> None:
    local = pytest.importorskip("dagsync.local.stack", reason="dagsync/local.py is not there yet")
    # Given the CDK stack and the local stack built from the same Topology
    stack, template = stack_template(env_config(name="topo", hosts=HOSTS))
    settings = AwsSettings(region="us-east-1", endpoint_url=moto_endpoint)
    # When the local stack provisions a moto server
    local.provision(settings, stack.topology, "dagsync-topo-artifacts")
    # Then both have the same queues, topics, subscriptions, redrive and notification filter
    assert from_local(settings, "dagsync-topo-artifacts") == from_template(template.to_json())
