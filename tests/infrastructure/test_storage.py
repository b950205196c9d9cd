"""Storage on a bare stack: the artifact bucket is versioned, encrypted, private, TLS-only and logged."""

from __future__ import annotations

from aws_cdk.assertions import Match, Template

from dagsync.core import keys
from infra.storage import Storage
from tests.infrastructure.helpers import bare_stack

HISTORY_DAYS = 400


def template(retain: bool = False) -> Template:
    stack = bare_stack()
    Storage(stack, "Storage", retention_days=30, retain_data=retain, release_history_days=HISTORY_DAYS)
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


def _expiring_prefixes(t: Template) -> dict[str, int]:
    """prefix -> days of every rule of the artifact bucket that expires current objects."""
    (bucket,) = [b for b in t.find_resources("AWS::S3::Bucket").values()
                 if "VersioningConfiguration" in b["Properties"]]
    rules = bucket["Properties"]["LifecycleConfiguration"]["Rules"]
    return {r.get("Prefix", ""): r["ExpirationInDays"] for r in rules if "ExpirationInDays" in r}


def test_every_release_root_expires_after_the_history_days_and_no_shard_ever_does() -> None:
    prefixes = _expiring_prefixes(template())
    # Every release root, whatever its sequence, is matched by exactly one expiring rule, of HISTORY_DAYS
    for sequence in (1, 42, 123_456_789, 9_999_999_999):
        matched = [days for prefix, days in prefixes.items() if keys.release_key(sequence).startswith(prefix)]
        assert matched == [HISTORY_DAYS], (sequence, matched)
    # No shard, no archive, no catalog, no manifest and not release.json is matched by any
    for key in (keys.shard_key("0" * 64), keys.shard_key("9f" * 32), keys.archive_key("sales", "1.0.0"),
                keys.catalog_key("sales"), keys.MANIFEST_KEY, keys.RELEASE_KEY, keys.host_status_key("worker-1")):
        assert not [p for p in prefixes if key.startswith(p)], key
