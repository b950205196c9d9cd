"""The release signing keys: one ECC P-256 key per name in cdk.json, the validator signing with the active one and
trusting the others (a rotation), every host told where to pin each public key."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Template

from dagsync.core import constants
from dagsync.core.topology import Topology
from infra.signing import ReleaseSigningKeys
from tests.infrastructure.helpers import bare_stack, env_config, resources, stack_template


def key_policies(template: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Alias name -> the statements of its key's policy."""
    keys = resources(template, "AWS::KMS::Key")
    return {a["Properties"]["AliasName"]: keys[a["Properties"]["TargetKeyId"]["Fn::GetAtt"][0]]["Properties"][
        "KeyPolicy"]["Statement"] for a in resources(template, "AWS::KMS::Alias").values()}


def test_each_named_key_is_an_ecc_signing_key_and_only_the_active_one_lets_the_validator_sign() -> None:
    # Given two keys during a rotation, the second active
    stack = bare_stack()
    role = iam.Role(stack, "ValidatorRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    topology = Topology(prefix="dagsync-t", hosts=())
    ReleaseSigningKeys(stack, "Signing", topology=topology, names=("1", "2"), active="2", signer=role)
    template = Template.from_stack(stack)
    # Then both are ECC_NIST_P256 sign/verify keys with the topology's aliases
    template.resource_count_is("AWS::KMS::Key", 2)
    template.all_resources_properties("AWS::KMS::Key", {"KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY",
                                                        "PendingWindowInDays": 30})
    policies = key_policies(template.to_json())
    assert set(policies) == {topology.signing_key_alias("1"), topology.signing_key_alias("2")}

    def validator_actions(statements: list[dict[str, Any]]) -> set[str]:
        return {a for st in statements if st["Effect"] == "Allow" and "Fn::GetAtt" in json.dumps(st["Principal"])
                for a in (st["Action"] if isinstance(st["Action"], list) else [st["Action"]])}

    # And the validator signs only with the active key, reads both public keys, and every key denies kms:Sign to
    # anyone but the validator's role
    assert validator_actions(policies[topology.signing_key_alias("2")]) == {"kms:Sign", "kms:GetPublicKey"}
    assert validator_actions(policies[topology.signing_key_alias("1")]) == {"kms:GetPublicKey"}
    for statements in policies.values():
        (deny,) = [st for st in statements if st["Effect"] == "Deny"]
        assert deny["Action"] == "kms:Sign" and deny["Principal"] == {"AWS": "*"}
        assert list(deny["Condition"]) == ["ArnNotEquals"]


def test_a_rotation_in_cdk_json_signs_with_the_new_key_trusts_the_old_and_tells_hosts_to_pin_both() -> None:
    # Given an environment rotating from key 1 to key 2
    _, template = stack_template(env_config(signing_keys=("1", "2"), signing_key="2"))
    raw = template.to_json()
    keys = {a["Properties"]["AliasName"].rsplit("-", 1)[1]: a["Properties"]["TargetKeyId"]["Fn::GetAtt"][0]
            for a in resources(raw, "AWS::KMS::Alias").values()}
    # Then the validator signs with key 2 and builds on roots of key 1
    env = next(f["Properties"]["Environment"]["Variables"] for f in resources(raw, "AWS::Lambda::Function").values()
               if constants.ENV_SIGNING_KEY in f["Properties"].get("Environment", {}).get("Variables", {}))
    assert env[constants.ENV_SIGNING_KEY] == {"Fn::GetAtt": [keys["2"], "Arn"]}
    assert env[constants.ENV_TRUSTED_KEY_IDS] == {"Fn::GetAtt": [keys["1"], "Arn"]}
    # And the outputs name both keys, and every host's configuration pins both public keys
    outputs = raw["Outputs"]
    assert outputs["ReleaseSigningKey1Arn"]["Value"] == {"Fn::GetAtt": [keys["1"], "Arn"]}
    assert "validator signs with it" in outputs["ReleaseSigningKey2Arn"]["Description"]
    host_config = json.dumps(outputs["HostWorker1AgentConfig"]["Value"])
    pinned = ",".join(constants.trusted_key_path(n) for n in ("1", "2"))
    assert f"{constants.ENV_TRUSTED_KEYS}={pinned}" in host_config


def test_one_key_by_default_and_no_other_trusted() -> None:
    _, template = stack_template()
    raw = template.to_json()
    assert len(resources(raw, "AWS::KMS::Alias")) == 1
    env = next(f["Properties"]["Environment"]["Variables"] for f in resources(raw, "AWS::Lambda::Function").values()
               if constants.ENV_SIGNING_KEY in f["Properties"].get("Environment", {}).get("Variables", {}))
    assert constants.ENV_TRUSTED_KEY_IDS not in env
