"""Fan-out on a bare stack: an encrypted TLS-only topic; per host a TLS-only queue with a DLQ, raw delivery."""

from __future__ import annotations

import json

from aws_cdk.assertions import Match, Template

from dagsync.core.constants import MAX_RECEIVE_COUNT
from dagsync.core.topology import Topology
from infra.fanout import SNS_MANAGED_KEY, FanOut
from tests.infrastructure.helpers import bare_stack

TOPOLOGY = Topology(prefix="dagsync-t", hosts=("scheduler", "worker-1", "worker-2"))


def template() -> Template:
    stack = bare_stack()
    FanOut(stack, "FanOut", topology=TOPOLOGY)
    return Template.from_stack(stack)


def test_the_change_topic_is_encrypted_and_tls_only() -> None:
    t = template()
    topics = t.find_resources("AWS::SNS::Topic", {"Properties": {"TopicName": TOPOLOGY.changes_topic}})
    assert len(topics) == 1
    assert SNS_MANAGED_KEY in json.dumps(next(iter(topics.values()))["Properties"]["KmsMasterKeyId"])
    t.has_resource_properties("AWS::SNS::TopicPolicy", {"PolicyDocument": {"Statement": Match.array_with([
        Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})])}})


def test_every_host_has_a_queue_with_a_dead_letter_queue() -> None:
    t = template()
    t.resource_count_is("AWS::SQS::Queue", 2 * len(TOPOLOGY.hosts))
    for host in TOPOLOGY.hosts:
        t.has_resource_properties("AWS::SQS::Queue", {"QueueName": TOPOLOGY.host_dlq(host)})
        t.has_resource_properties("AWS::SQS::Queue", {
            "QueueName": TOPOLOGY.host_queue(host),
            "SqsManagedSseEnabled": True,
            "RedrivePolicy": {"deadLetterTargetArn": Match.any_value(), "maxReceiveCount": MAX_RECEIVE_COUNT},
        })


def test_every_queue_denies_requests_without_tls() -> None:
    t = template()
    tls_only = t.find_resources("AWS::SQS::QueuePolicy", {"Properties": {"PolicyDocument": {"Statement":
        Match.array_with([Match.object_like({"Effect": "Deny", "Condition": {"Bool": {
            "aws:SecureTransport": "false"}}})])}}})
    assert len(tls_only) == 2 * len(TOPOLOGY.hosts)


def test_each_host_queue_is_subscribed_with_raw_delivery() -> None:
    t = template()
    t.resource_count_is("AWS::SNS::Subscription", len(TOPOLOGY.hosts))
    subs = t.find_resources("AWS::SNS::Subscription", {"Properties": {"Protocol": "sqs", "RawMessageDelivery": True}})
    assert len(subs) == len(TOPOLOGY.hosts)
