"""cdk-nag acknowledgments, always with the reason in code.

cdk-nag 3.x uses CDK's own `Validations.of(construct).acknowledge(...)`; a rule that reports several
findings (IAM5 with one per wildcard) needs one acknowledgment per finding, e.g.
`AwsSolutions-IAM5[Resource::<BucketLogicalId.Arn>/projects/*]`."""

from __future__ import annotations

from aws_cdk import Acknowledgment, CfnElement, Stack, Validations
from constructs import IConstruct


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Accept one cdk-nag finding on `scope` (and everything under it) for a stated reason."""
    if len(reason.strip()) < 20:
        raise ValueError(f"acknowledging {rule} needs a real reason, got {reason!r}")
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))


def arn_token(element: CfnElement) -> str:
    """How cdk-nag spells `Fn::GetAtt [<logical id>, Arn]` in a finding id."""
    logical_id = Stack.of(element).resolve(element.logical_id)
    return f"<{logical_id}.Arn>"


def wildcard_resource(rule_scope: IConstruct, element: CfnElement, suffix: str, reason: str) -> None:
    """Acknowledge AwsSolutions-IAM5 for the resource `<element ARN><suffix>`, e.g. suffix "/projects/*"."""
    acknowledge(rule_scope, f"AwsSolutions-IAM5[Resource::{arn_token(element)}{suffix}]", reason)
