"""dagsync.core.aws trims botocore's loaded data (the agent's memory): every client must still resolve exactly as a
plain boto3 session's does, in every partition."""

from __future__ import annotations

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
