"""Access on a bare stack: the CI publisher and one agent policy per host, each least privilege."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from aws_cdk.assertions import Template

from dagsync.core import keys
from infra.access import AgentAccess, PublisherAccess
from tests.infrastructure.helpers import bare_stack


def statements_by_action(policy: dict[str, Any]) -> dict[str, str]:
    out: dict[str, list[Any]] = {}
    for st in policy["Properties"]["PolicyDocument"]["Statement"]:
        for action in st["Action"] if isinstance(st["Action"], list) else [st["Action"]]:
            out.setdefault(action, []).append(st["Resource"])
    return {k: json.dumps(v) for k, v in out.items()}


def test_publisher_writes_archives_catalogs_and_manifest_and_reads_status() -> None:
    stack = bare_stack()
    PublisherAccess(stack, "Publisher", bucket=s3.Bucket(stack, "Bucket"))
    t = Template.from_stack(stack)
    (policy,) = t.find_resources("AWS::IAM::ManagedPolicy").values()
    acts = statements_by_action(policy)
    for pattern in ("/projects/*", "/catalog/*", keys.MANIFEST_KEY):
        assert pattern in acts["s3:PutObject"]
    for pattern in ("/status/*", keys.RELEASE_KEY, "/hosts/*"):
        assert pattern in acts["s3:GetObject"] and pattern not in acts["s3:PutObject"]
    assert "s3:DeleteObject" not in acts
    t.has_resource_properties("AWS::IAM::Role", {"MaxSessionDuration": 3600})


def test_an_agent_touches_only_its_own_status_key_and_queue() -> None:
    stack = bare_stack()
    bucket = s3.Bucket(stack, "Bucket")
    mine, other = sqs.Queue(stack, "Mine"), sqs.Queue(stack, "Other")
    signing = kms.Key(stack, "Signing", key_spec=kms.KeySpec.ECC_NIST_P256, key_usage=kms.KeyUsage.SIGN_VERIFY)
    AgentAccess(stack, "AgentA", bucket=bucket, host="a", queue=mine, signing_keys=[signing])
    t = Template.from_stack(stack)
    (policy,) = t.find_resources("AWS::IAM::ManagedPolicy").values()
    acts = statements_by_action(policy)
    assert "/projects/*" in acts["s3:GetObject"] and keys.RELEASE_KEY in acts["s3:GetObject"]
    assert f"/{keys.host_status_key('a')}" in acts["s3:PutObject"]
    assert "/hosts/*" not in acts["s3:PutObject"] and "/projects/" not in acts["s3:PutObject"]
    mine_id = stack.resolve(mine.node.default_child.logical_id)  # type: ignore[union-attr]
    other_id = stack.resolve(other.node.default_child.logical_id)  # type: ignore[union-attr]
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage"):
        assert mine_id in acts[action] and other_id not in acts[action]
    assert not [a for a in acts if a.startswith("sqs:") and a not in ("sqs:ReceiveMessage", "sqs:DeleteMessage")]
    # It may read the signing key's public half (--trusted-kms-keys), and do nothing else with KMS
    assert [a for a in acts if a.startswith("kms:")] == ["kms:GetPublicKey"]
