"""dagsync.core.aws trims botocore's loaded data (the agent's memory): every client must still resolve exactly as a
plain boto3 session's does, in every partition."""

from __future__ import annotations

import subprocess
import sys

import boto3
import pytest

from dagsync.core import aws

REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2", "us-gov-west-1", "cn-north-1"]


@pytest.mark.parametrize("region", REGIONS)
@pytest.mark.parametrize("service", [*sorted(aws.ENDPOINT_SERVICES - {"sso", "sso-oidc"}), "sso", "lambda"])
def test_a_lean_client_resolves_as_a_plain_one(region: str, service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("DAGSYNC_ENDPOINT_URL", raising=False)
    lean = aws.AwsSettings(region=region).client(service)
    plain = boto3.session.Session().client(service, region_name=region)
    assert lean.meta.endpoint_url == plain.meta.endpoint_url
    assert lean.meta.region_name == plain.meta.region_name
    assert lean.meta.partition == plain.meta.partition
    assert lean._request_signer._signing_name == plain._request_signer._signing_name


def test_the_lean_session_holds_less() -> None:
    lean = aws.AwsSettings(region="us-east-1").client("s3")
    plain = boto3.session.Session().client("s3", region_name="us-east-1")
    assert plain.meta.service_model.operation_model("GetObject").documentation
    assert not lean.meta.service_model.operation_model("GetObject").documentation
    assert lean.meta.service_model.operation_names == plain.meta.service_model.operation_names
    endpoints, _ = aws._loader(aws._session()).load_data_with_path("endpoints")
    services = {name for partition in endpoints["partitions"] for name in partition["services"]}
    assert services <= aws.ENDPOINT_SERVICES and "s3" in services


# only_operations changes what the process's one session has loaded: each case runs in its own interpreter.
ONLY = """
import sys
from dagsync.core import aws
aws.only_operations("s3", ["GetObject", "ListObjectsV2"])
client = aws.AwsSettings(region="us-east-1").client("s3")
model = client.meta.service_model
print(sorted(model.operation_names), hasattr(client, "get_object"), hasattr(client, "put_object"))
print(len(model.shape_names), "GetObjectOutput" in model.shape_names, "PutObjectRequest" in model.shape_names)
client.get_paginator("list_objects_v2")
try:
    aws.only_operations("s3", ["GetObject"])
except RuntimeError as exc:
    print(exc)
aws.only_operations("sqs", ["ReceiveMesage"])
try:
    aws.AwsSettings(region="us-east-1").client("sqs")
except ValueError as exc:
    print(exc)
"""


def test_a_process_that_declares_its_calls_loads_only_those() -> None:
    # Given a process that calls only GetObject and ListObjectsV2 on S3
    out = subprocess.run([sys.executable, "-c", ONLY], capture_output=True, text=True, check=True).stdout.splitlines()
    # Then its S3 client has those operations only, with the shapes they use and no other
    assert out[0] == "['GetObject', 'ListObjectsV2'] True False"
    count, has_output, has_other = out[1].split()
    plain = boto3.session.Session().client("s3", region_name="us-east-1").meta.service_model
    assert 0 < int(count) < len(plain.shape_names) / 4 and (has_output, has_other) == ("True", "False")
    # And a later, different declaration is refused, and so is an operation the service does not have
    assert out[2] == "only_operations('s3') comes after the process built a s3 client"
    assert out[3] == "SQS has no operation ReceiveMesage"
