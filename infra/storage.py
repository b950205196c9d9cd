"""The artifact bucket (projects, catalogs, manifest, release, status) and its access-log bucket."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.nag import acknowledge

ABORT_UPLOADS_AFTER = Duration.days(7)
ACCESS_LOG_PREFIX = "artifacts/"


class Storage(Construct):
    """Versioned, encrypted, private, TLS-only artifact bucket whose access is logged to a log bucket."""

    def __init__(self, scope: Construct, id_: str, *, retention_days: int, retain_data: bool) -> None:
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
                )
            ],
            removal_policy=removal,
        )
