"""The real app: every environment synthesizes, cdk-nag AwsSolutions finds nothing unacknowledged,
and every acknowledgment carries its reason."""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_sqs as sqs
from cdk_nag import AwsSolutionsChecks

from infra.config import CONTEXT_KEY
from infra.nag import acknowledge
from tests.infrastructure.conftest import REPO_ROOT, Assembly


def configured_environments() -> list[str]:
    return list(json.loads((REPO_ROOT / "cdk.json").read_text())["context"][CONTEXT_KEY])


def test_every_environment_in_cdk_json_becomes_a_stack(assembly: Assembly) -> None:
    # Given the environments in cdk.json / When app.py ran / Then there is one DagSync-<env> stack each
    assert assembly.stacks() == sorted(f"DagSync-{env}" for env in configured_environments())
    assert len(assembly.stacks()) >= 3


def test_cdk_nag_reports_no_unacknowledged_finding(assembly: Assembly) -> None:
    # Given the app ran with AwsSolutionsChecks as a validation plugin
    report_path = assembly.outdir / "validation-report.json"
    # When the report is read / Then the plugin ran and reported no violation of any severity
    report = json.loads(report_path.read_text())
    violations = [v for plugin in report["pluginReports"] for v in plugin.get("violations", [])]
    assert violations == []


def _suppressions(template: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [
        (logical_id, rule["id"], rule.get("reason", ""))
        for logical_id, resource in template["Resources"].items()
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
    ]


def test_every_acknowledgment_states_a_reason(assembly: Assembly) -> None:
    for stack in assembly.stacks():
        # Given the acknowledgments cdk-nag copied into the template metadata
        suppressions = _suppressions(assembly.template(stack))
        # Then there are some, and none is without a real reason
        assert suppressions, f"{stack}: no cdk_nag metadata; write_suppressions_to_cloud_formation is off?"
        assert [s for s in suppressions if len(s[2]) < 20] == []


def test_prod_retains_its_buckets_and_dev_does_not(assembly: Assembly) -> None:
    def policies(stack: str) -> set[str]:
        return {r["DeletionPolicy"] for r in assembly.template(stack)["Resources"].values()
                if r["Type"] == "AWS::S3::Bucket"}

    assert policies("DagSync-prod") == {"Retain"}
    assert policies("DagSync-dev") == {"Delete"}


def test_each_host_gets_queue_policy_and_agent_config_outputs(assembly: Assembly) -> None:
    # Given the dev stack's outputs
    outputs = assembly.template("DagSync-dev")["Outputs"]
    config = json.dumps(outputs["HostWorker1AgentConfig"]["Value"])
    # Then a worker-1 host has its queue URL, policy and a ready-to-paste environment
    assert {"BucketName", "ChangesTopicArn", "HostWorker1QueueUrl", "HostWorker1PolicyArn"} <= set(outputs)
    for var in ("DAGSYNC_BUCKET=", "DAGSYNC_QUEUE_URL=", "DAGSYNC_HOST=worker-1", "AWS_REGION=", "DAGSYNC_DAGS_DIR=",
                "DAGSYNC_TRUSTED_KEYS=/etc/dagsync/keys/release-signing-1.pem"):
        assert var in config


def test_the_nag_plugin_does_catch_an_insecure_resource(tmp_path: Any) -> None:
    # Given a stack with a queue that has neither a DLQ nor a TLS-only policy
    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "Insecure")
    sqs.Queue(stack, "Plain")
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    # When it synthesizes / Then validation fails and the report names the rules
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    rules = {v["ruleName"] for p in report["pluginReports"] for v in p["violations"]}
    assert {"AwsSolutions-SQS3", "AwsSolutions-SQS4"} <= rules


def test_an_acknowledgment_without_a_reason_is_refused() -> None:
    stack = cdk.Stack()
    queue = sqs.Queue(stack, "Q")
    with pytest.raises(ValueError, match="real reason"):
        acknowledge(queue, "AwsSolutions-SQS3", "because")
