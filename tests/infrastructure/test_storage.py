"""Storage on a bare stack: the artifact bucket is versioned, encrypted, private, TLS-only and logged."""

from __future__ import annotations

from aws_cdk.assertions import Match, Template

from infra.storage import Storage
from tests.infrastructure.helpers import bare_stack


def template(retain: bool = False) -> Template:
    stack = bare_stack()
    Storage(stack, "Storage", retention_days=30, retain_data=retain)
    return Template.from_stack(stack)


def test_artifact_bucket_is_versioned_encrypted_private_and_logged() -> None:
    t = template()
    t.resource_count_is("AWS::S3::Bucket", 2)
    t.has_resource_properties("AWS::S3::Bucket", {
        "VersioningConfiguration": {"Status": "Enabled"},
        "BucketEncryption": {"ServerSideEncryptionConfiguration": [
            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
        "PublicAccessBlockConfiguration": {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                           "IgnorePublicAcls": True, "RestrictPublicBuckets": True},
        "LoggingConfiguration": {"DestinationBucketName": Match.any_value(), "LogFilePrefix": "artifacts/"},
        "LifecycleConfiguration": {"Rules": Match.array_with([Match.object_like(
            {"NoncurrentVersionExpiration": {"NoncurrentDays": 30}, "Status": "Enabled"})])},
    })


def test_both_buckets_deny_requests_without_tls() -> None:
    t = template()
    deny_insecure = Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})
    policies = t.find_resources("AWS::S3::BucketPolicy", {"Properties": {"PolicyDocument": {
        "Statement": Match.array_with([deny_insecure])}}})
    assert len(policies) == 2


def test_log_bucket_expires_logs() -> None:
    template().has_resource_properties("AWS::S3::Bucket", {
        "LifecycleConfiguration": {"Rules": Match.array_with([Match.object_like(
            {"ExpirationInDays": 30, "Status": "Enabled"})])},
    })


def test_buckets_are_retained_only_when_asked() -> None:
    assert set(template(retain=True).find_resources("AWS::S3::Bucket", {"DeletionPolicy": "Retain"})) != set()
    assert template(retain=False).find_resources("AWS::S3::Bucket", {"DeletionPolicy": "Retain"}) == {}
