"""The artifact bucket (projects, catalogs, manifest, release, release history, status) and its access-log bucket."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct

from dagsync.core import keys
from infra.nag import acknowledge

ABORT_UPLOADS_AFTER = Duration.days(7)
ACCESS_LOG_PREFIX = "artifacts/"
# Release roots are releases/<ten digits>.json; shards are releases/shards/<sha256>.json. S3 lifecycle filters match
# prefixes only, so "every root, no shard" is one rule per leading digit: no shard key starts with a digit there.
RELEASE_ROOT_PREFIXES = tuple(f"{keys.RELEASES_PREFIX}{digit}" for digit in "0123456789")


def release_history_rules(days: int) -> list[s3.LifecycleRule]:
    """Each release root expires `days` after it was written. Shards never expire: the current release may name a
    shard written years ago (a project unchanged since), so no age makes deleting one safe; they are small (the
    entries of the projects a change touched) and shared by every release that did not change them."""
    return [
        s3.LifecycleRule(id=f"expire-release-history-{prefix[-1]}", prefix=prefix, expiration=Duration.days(days))
        for prefix in RELEASE_ROOT_PREFIXES
    ]


class Storage(Construct):
    """Versioned, encrypted, private, TLS-only artifact bucket whose access is logged to a log bucket."""

    def __init__(self, scope: Construct, id_: str, *, retention_days: int, retain_data: bool,
                 release_history_days: int) -> None:
        super().__init__(scope, id_)
        removal = RemovalPolicy.RETAIN if retain_data else RemovalPolicy.DESTROY
        self.log_bucket = s3.Bucket(
            self,
            "AccessLogs",
            # Server access logs can only be delivered to an SSE-S3 bucket.
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs",
                    expiration=Duration.days(retention_days),
                    abort_incomplete_multipart_upload_after=ABORT_UPLOADS_AFTER,
                )
            ],
            removal_policy=removal,
        )
        acknowledge(
            self.log_bucket,
            "AwsSolutions-S1",
            "This is the access-log target of the artifact bucket; logging it to itself (or another bucket) "
            "would only log the log delivery.",
        )
        self.bucket = s3.Bucket(
            self,
            "Artifacts",
            versioned=True,
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            server_access_logs_bucket=self.log_bucket,
            server_access_logs_prefix=ACCESS_LOG_PREFIX,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-noncurrent-versions",
                    noncurrent_version_expiration=Duration.days(retention_days),
                    abort_incomplete_multipart_upload_after=ABORT_UPLOADS_AFTER,
                    expired_object_delete_marker=True,
                ),
                *release_history_rules(release_history_days),
            ],
            removal_policy=removal,
        )
