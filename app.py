#!/usr/bin/env python3
"""CDK app: one `DagSync-<env>` stack per environment in the context key `dagsync:environments`.

Configuration is read here only; the stack and constructs receive typed settings."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra.config import CONTEXT_KEY, parse_environments
from infra.stack import DagSyncStack

CDK_JSON = Path(__file__).resolve().parent / "cdk.json"


def cdk_json_context() -> dict[str, Any]:
    """The CDK CLI passes cdk.json's context in; `python app.py` alone reads the same file."""
    if "CDK_CONTEXT_JSON" in os.environ:
        return {}
    return dict(json.loads(CDK_JSON.read_text()).get("context", {}))


def main() -> cdk.App:
    app = cdk.App(context=cdk_json_context())
    only = app.node.try_get_context("dagsync:only")  # `-c dagsync:only=dev` to synthesize one environment
    for config in parse_environments(app.node.try_get_context(CONTEXT_KEY)):
        if only and config.name != only:
            continue
        DagSyncStack(
            app,
            config.stack_name,
            config=config,
            env=cdk.Environment(account=config.account, region=config.region),
            description=f"dagsync {config.name}: DAG artifact bucket, validator, change fan-out to Airflow hosts",
        )
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, write_suppressions_to_cloud_formation=True))
    app.synth()
    return app


if __name__ == "__main__":
    main()
