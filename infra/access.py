"""Least-privilege policies: one for CI publishers (with a role to assume), one per agent host."""

from __future__ import annotations

from typing import cast

from aws_cdk import CfnElement, Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from dagsync.core import keys
from infra.nag import wildcard_resource

PUBLISHER_WRITE = ("projects/*", "catalog/*", keys.MANIFEST_KEY)
PUBLISHER_READ = (*PUBLISHER_WRITE, "status/*", keys.RELEASE_KEY, f"{keys.RELEASES_PREFIX}*", f"{keys.HOSTS_PREFIX}*")
AGENT_READ = ("projects/*", keys.RELEASE_KEY, f"{keys.RELEASES_PREFIX}*")
AGENT_QUEUE_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage")


def _objects(bucket: s3.IBucket, patterns: tuple[str, ...]) -> list[str]:
    return [bucket.arn_for_objects(p) for p in patterns]


def _wildcards(policy: iam.ManagedPolicy, bucket: s3.Bucket, patterns: tuple[str, ...], who: str) -> None:
    for pattern in sorted({p for p in patterns if p.endswith("*")}):
        wildcard_resource(
            policy, cast(CfnElement, bucket.node.default_child), f"/{pattern}",
            f"{who} needs every object under {pattern.rstrip('*')}: one key per project, version or host, "
            "named at run time; the prefix is the narrowest scope.",
        )


class PublisherAccess(Construct):
    """What `dagsync publish` in CI needs: write archives, catalogs and the manifest; read status."""

    def __init__(self, scope: Construct, id_: str, *, bucket: s3.Bucket) -> None:
        super().__init__(scope, id_)
        self.policy = iam.ManagedPolicy(
            self,
            "Policy",
            description="dagsync publisher (CI): write projects/, catalog/, manifest.yaml; read status",
            statements=[
                iam.PolicyStatement(actions=["s3:PutObject"], resources=_objects(bucket, PUBLISHER_WRITE)),
                iam.PolicyStatement(actions=["s3:GetObject"], resources=_objects(bucket, PUBLISHER_READ)),
                iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket.bucket_arn]),
            ],
        )
        _wildcards(self.policy, bucket, PUBLISHER_READ, "The publisher")
        self.role = iam.Role(
            self,
            "Role",
            description="Assumed by CI to publish DAG projects (attach the policy to an OIDC role instead if you "
            "federate CI)",
            assumed_by=iam.AccountRootPrincipal(),
            managed_policies=[self.policy],
            max_session_duration=Duration.hours(1),
        )


class AgentAccess(Construct):
    """What one host's agent needs: read archives and release.json, report its own status, drain its queue."""

    def __init__(self, scope: Construct, id_: str, *, bucket: s3.Bucket, host: str, queue: sqs.IQueue,
                 signing_keys: list[kms.IKey]) -> None:
        super().__init__(scope, id_)
        self.policy = iam.ManagedPolicy(
            self,
            "Policy",
            description=f"dagsync agent on host {host}",
            statements=[
                iam.PolicyStatement(actions=["s3:GetObject"], resources=_objects(bucket, AGENT_READ)),
                iam.PolicyStatement(actions=["s3:PutObject"], resources=[bucket.arn_for_objects(
                    keys.host_status_key(host))]),
                iam.PolicyStatement(actions=list(AGENT_QUEUE_ACTIONS), resources=[queue.queue_arn]),
                # Only for --trusted-kms-keys (an opt-in): a public key is no secret; signing stays the validator's.
                iam.PolicyStatement(actions=["kms:GetPublicKey"], resources=[k.key_arn for k in signing_keys]),
            ],
        )
        _wildcards(self.policy, bucket, AGENT_READ, f"The agent on {host}")
