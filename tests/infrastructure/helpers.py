"""Shared helpers for the infrastructure suite: stacks without bundling, template look-ups by name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Template

from infra.config import EnvironmentConfig
from infra.stack import DagSyncStack

DUMMY_CODE_DIR = Path(__file__).parent / "fixtures" / "dummy_lambda"
CDK_JSON = Path(__file__).resolve().parents[2] / "cdk.json"


def feature_flags() -> dict[str, Any]:
    """The app's CDK feature flags from cdk.json (without dagsync's own configuration)."""
    context = json.loads(CDK_JSON.read_text())["context"]
    return {k: v for k, v in context.items() if k.startswith("@aws-cdk/")}


def bare_stack() -> cdk.Stack:
    """A plain cdk.Stack under an App with the same feature flags as app.py."""
    return cdk.Stack(cdk.App(context=feature_flags()), "Bare")


def dummy_code() -> lambda_.Code:
    """Stand-in Lambda code so construct tests do not pip-install the real bundle."""
    return lambda_.Code.from_asset(str(DUMMY_CODE_DIR))


def env_config(**overrides: Any) -> EnvironmentConfig:
    values: dict[str, Any] = {"name": "test", "hosts": ("scheduler", "worker-1")}
    values.update(overrides)
    return EnvironmentConfig(**values)


def stack_template(config: EnvironmentConfig | None = None) -> tuple[DagSyncStack, Template]:
    app = cdk.App(context=feature_flags())
    config = config or env_config()
    stack = DagSyncStack(app, config.stack_name, config=config, code=dummy_code())
    return stack, Template.from_stack(stack)


def resources(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == type_}


def logical_id(ref: Any) -> str:
    """The logical id inside {"Ref": id} or {"Fn::GetAtt": [id, attr]}."""
    if "Ref" in ref:
        return str(ref["Ref"])
    return str(ref["Fn::GetAtt"][0])
