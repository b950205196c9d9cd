"""Least privilege, evaluated: the IAM statements of every synthesized environment are run through a small
evaluator (actions and ARNs with IAM wildcards, explicit deny wins) to ask what each principal may do, and every
bucket, queue and topic policy must deny requests that do not use TLS."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

import pytest

from dagsync.core import keys
from tests.infrastructure.conftest import Assembly

ACCOUNT, REGION = "111122223333", "us-east-1"
PUBLISHER = "dagsync publisher"
AGENT = "dagsync agent on host "


@dataclass(frozen=True)
class Statement:
    effect: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]


class Template:
    def __init__(self, raw: dict[str, Any]) -> None:
        self.resources: dict[str, dict[str, Any]] = raw["Resources"]

    def of_type(self, type_: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == type_}

    def arn(self, logical_id: str) -> str:
        """A stand-in ARN, unique per resource, in the shape IAM matches against."""
        kind = self.resources[logical_id]["Type"]
        if kind == "AWS::S3::Bucket":
            return f"arn:aws:s3:::{logical_id.lower()}"
        service = kind.split("::")[1].lower()
        return f"arn:aws:{service}:{REGION}:{ACCOUNT}:{logical_id}"

    def resolve(self, value: Any) -> str:
        if isinstance(value, str):
            return value
        if "Fn::Join" in value:
            sep, parts = value["Fn::Join"]
            return str(sep).join(self.resolve(p) for p in parts)
        if "Fn::GetAtt" in value:
            logical_id, attr = value["Fn::GetAtt"]
            assert attr == "Arn", value
            return self.arn(logical_id)
        if "Ref" in value:
            ref = value["Ref"]
            pseudo = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT,
                      "AWS::URLSuffix": "amazonaws.com"}
            if ref in pseudo:
                return pseudo[ref]
            kind = self.resources[ref]["Type"]
            if kind == "AWS::SQS::Queue":
                return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{ref}"
            return self.arn(ref)
        raise AssertionError(f"cannot resolve {value!r}")

    def statements(self, document: dict[str, Any]) -> list[Statement]:
        out = []
        for st in document["Statement"]:
            assert "NotAction" not in st and "NotResource" not in st, st  # every grant is a positive list
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
            out.append(Statement(st["Effect"], tuple(actions), tuple(self.resolve(r) for r in resources)))
        return out

    def managed_policy(self, description_prefix: str) -> list[Statement]:
        found = [p for p in self.of_type("AWS::IAM::ManagedPolicy").values()
                 if p["Properties"].get("Description", "").startswith(description_prefix)]
        assert len(found) == 1, description_prefix
        return self.statements(found[0]["Properties"]["PolicyDocument"])

    def role_policies(self, role_prefix: str) -> list[Statement]:
        out: list[Statement] = []
        for policy in self.of_type("AWS::IAM::Policy").values():
            roles = [r.get("Ref", "") for r in policy["Properties"].get("Roles", [])]
            if any(r.startswith(role_prefix) for r in roles):
                out += self.statements(policy["Properties"]["PolicyDocument"])
        assert out, role_prefix
        return out

    def bucket(self) -> str:
        (artifacts,) = [k for k in self.of_type("AWS::S3::Bucket") if k.startswith("StorageArtifacts")]
        return self.arn(artifacts)

    def host_queue(self, host: str) -> str:
        (queue,) = [k for k, v in self.of_type("AWS::SQS::Queue").items()
                    if v["Properties"].get("QueueName") == f"dagsync-{self.env}-host-{host}"]
        return self.arn(queue)

    env = ""


def _match(pattern: str, value: str) -> bool:
    return fnmatch.fnmatchcase(value.lower(), pattern.lower())


def allowed(statements: list[Statement], action: str, resource: str) -> bool:
    def hits(st: Statement) -> bool:
        return any(_match(a, action) for a in st.actions) and any(_match(r, resource) for r in st.resources)

    return any(hits(s) for s in statements if s.effect == "Allow") and not any(
        hits(s) for s in statements if s.effect == "Deny")


def hosts_of(template: Template) -> list[str]:
    return sorted(p["Properties"]["Description"].removeprefix(AGENT)
                  for p in template.of_type("AWS::IAM::ManagedPolicy").values()
                  if p["Properties"].get("Description", "").startswith(AGENT))


@pytest.fixture(params=["dev", "staging", "prod"])
def template(request: pytest.FixtureRequest, assembly: Assembly) -> Template:
    t = Template(assembly.template(f"DagSync-{request.param}"))
    t.env = request.param
    return t


def obj(t: Template, key: str) -> str:
    return f"{t.bucket()}/{key}"


ARTIFACTS = ("projects/sales/1.0.0/dags.tar.gz", "catalog/sales.yaml", keys.MANIFEST_KEY)
WRITES = ("s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectAcl", "s3:PutBucketPolicy")


def test_an_agent_reads_what_it_syncs_and_writes_only_its_own_status(template: Template) -> None:
    hosts = hosts_of(template)
    assert len(hosts) >= 2
    for host in hosts:
        agent = template.managed_policy(AGENT + host)
        # It can read archives and release.json, and report its own status
        assert allowed(agent, "s3:GetObject", obj(template, ARTIFACTS[0]))
        assert allowed(agent, "s3:GetObject", obj(template, keys.RELEASE_KEY))
        assert allowed(agent, "s3:PutObject", obj(template, keys.host_status_key(host)))
        # It cannot write artifacts, the catalog, the manifest, release.json, rejections or another host's status
        for other in [h for h in hosts if h != host]:
            assert not allowed(agent, "s3:PutObject", obj(template, keys.host_status_key(other)))
        for key in (*ARTIFACTS, keys.RELEASE_KEY, keys.REJECTION_KEY, "hosts/../release.json"):
            for action in WRITES:
                assert not allowed(agent, action, obj(template, key)), (host, action, key)
        # It cannot read the manifest or catalogs it has no use for, nor touch another host's queue, nor publish
        assert not allowed(agent, "s3:GetObject", obj(template, keys.MANIFEST_KEY))
        assert allowed(agent, "sqs:ReceiveMessage", template.host_queue(host))
        for other in [h for h in hosts if h != host]:
            assert not allowed(agent, "sqs:ReceiveMessage", template.host_queue(other))
            assert not allowed(agent, "sqs:DeleteMessage", template.host_queue(other))
        assert not allowed(agent, "sqs:SendMessage", template.host_queue(host))
        assert not allowed(agent, "sns:Publish", f"arn:aws:sns:{REGION}:{ACCOUNT}:anything")


def test_the_publisher_writes_artifacts_and_the_manifest_but_never_the_release(template: Template) -> None:
    publisher = template.managed_policy(PUBLISHER)
    for key in ARTIFACTS:
        assert allowed(publisher, "s3:PutObject", obj(template, key))
    for key in (keys.RELEASE_KEY, keys.REJECTION_KEY, keys.host_status_key("scheduler"), "status/history/x.json"):
        assert not allowed(publisher, "s3:PutObject", obj(template, key)), key
    for key in (*ARTIFACTS, keys.RELEASE_KEY):
        for action in WRITES[1:]:
            assert not allowed(publisher, action, obj(template, key)), (action, key)


def test_the_validator_writes_only_the_release_and_status(template: Template) -> None:
    validator = template.role_policies("ValidatorRole")
    assert allowed(validator, "s3:PutObject", obj(template, keys.RELEASE_KEY))
    assert allowed(validator, "s3:PutObject", obj(template, keys.REJECTION_KEY))
    for key in (*ARTIFACTS, keys.host_status_key("scheduler")):
        assert not allowed(validator, "s3:PutObject", obj(template, key)), key
    for action in WRITES[1:]:
        assert not allowed(validator, action, obj(template, keys.RELEASE_KEY)), action


# For topics, AWS's guidance for encryption in transit (and CDK's enforceSSL) is a deny of
# sns:Publish without TLS: that is the call that carries message content. Buckets and queues deny everything.
TLS_DENY_ACTIONS = {"s3": {"s3:*"}, "sqs": {"sqs:*"}, "sns": {"sns:*", "sns:Publish"}}


def _denies_plain_http(template: Template, document: dict[str, Any], service: str, arns: set[str]) -> bool:
    for st in document["Statement"]:
        cond = st.get("Condition", {}).get("Bool", {})
        principal = st.get("Principal")
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        if (st["Effect"] == "Deny" and cond.get("aws:SecureTransport") == "false"
                and principal in ("*", {"AWS": "*"}) and TLS_DENY_ACTIONS[service] & set(actions)
                and arns <= {template.resolve(r) for r in resources}):
            return True
    return False


def test_every_bucket_queue_and_topic_denies_requests_without_tls(template: Template) -> None:
    for logical_id in template.of_type("AWS::S3::Bucket"):
        assert _bucket_policy_denies(template, logical_id), f"{logical_id} accepts plain HTTP"
    for kind, policy_type, key, service in (("AWS::SQS::Queue", "AWS::SQS::QueuePolicy", "Queues", "sqs"),
                                            ("AWS::SNS::Topic", "AWS::SNS::TopicPolicy", "Topics", "sns")):
        policies = template.of_type(policy_type).values()
        for logical_id in template.of_type(kind):
            covering = [p["Properties"]["PolicyDocument"] for p in policies
                        if {"Ref": logical_id} in p["Properties"][key]]
            assert any(_denies_plain_http(template, doc, service, {template.arn(logical_id)}) for doc in covering), \
                f"{logical_id} accepts plain HTTP"


def _bucket_policy_denies(template: Template, bucket_id: str) -> bool:
    arn = template.arn(bucket_id)
    for policy in template.of_type("AWS::S3::BucketPolicy").values():
        if policy["Properties"]["Bucket"] == {"Ref": bucket_id}:
            return _denies_plain_http(template, policy["Properties"]["PolicyDocument"], "s3", {arn, f"{arn}/*"})
    return False


# --- the release signing keys: only the validator's role may sign ---------------------------------------------

SIGN = "kms:Sign"
ANYONE = ("*", {"AWS": "*"})


def _principal_matches(template: Template, principal: Any, who: str) -> bool:
    if principal in ANYONE:
        return True
    values = principal["AWS"] if isinstance(principal["AWS"], list) else [principal["AWS"]]
    return any(template.resolve(v) in (who, f"arn:aws:iam::{ACCOUNT}:root") for v in values)


def _conditions_hold(template: Template, conditions: dict[str, Any], who: str) -> bool:
    for operator, tests in conditions.items():
        assert operator == "ArnNotEquals" and set(tests) == {"aws:PrincipalArn"}, conditions  # what this evaluates
        if template.resolve(tests["aws:PrincipalArn"]) == who:
            return False
    return True


def may_use_key(template: Template, key_id: str, who: str, iam: list[Statement], action: str) -> bool:
    """KMS's rule for a principal of the account: an explicit deny in the key policy wins; else the key policy allows
    it by name, or allows the account (root) and the principal's IAM policies allow it."""
    policy = template.resources[key_id]["Properties"]["KeyPolicy"]["Statement"]
    hits = [st for st in policy
            if any(_match(a, action) for a in (st["Action"] if isinstance(st["Action"], list) else [st["Action"]]))
            and _principal_matches(template, st["Principal"], who)
            and _conditions_hold(template, st.get("Condition", {}), who)]
    if any(st["Effect"] == "Deny" for st in hits):
        return False
    by_name = any(template.resolve(st["Principal"]["AWS"]) == who for st in hits
                  if st["Effect"] == "Allow" and st["Principal"] not in ANYONE)
    via_account = any(st["Effect"] == "Allow" for st in hits)
    return by_name or (via_account and allowed(iam, action, template.arn(key_id)))


def signing_keys(template: Template) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template.of_type("AWS::KMS::Key").items() if v["Properties"].get("KeyUsage")
            == "SIGN_VERIFY"}


def test_only_the_validators_role_may_sign_a_release_even_against_an_administrators_iam(template: Template) -> None:
    keys_ = signing_keys(template)
    assert keys_, "no release signing key"
    (validator_role,) = [k for k in template.of_type("AWS::IAM::Role") if k.startswith("ValidatorRole")]
    validator = template.arn(validator_role)
    publisher_role = next(k for k, v in template.of_type("AWS::IAM::Role").items()
                          if "Assumed by CI" in v["Properties"].get("Description", ""))
    admin = [Statement("Allow", ("*",), ("*",))]  # AdministratorAccess
    for key_id, key in keys_.items():
        # Given an ECC P-256 signing key
        assert (key["Properties"]["KeySpec"], key["Properties"]["KeyUsage"]) == ("ECC_NIST_P256", "SIGN_VERIFY")
        # Then the validator's role signs with it (the active key) and reads its public key
        assert may_use_key(template, key_id, validator, template.role_policies("ValidatorRole"), SIGN)
        assert may_use_key(template, key_id, validator, [], "kms:GetPublicKey")
        # And nobody else may sign: not an administrator, not CI, not an agent, not a role of another account
        assert not may_use_key(template, key_id, f"arn:aws:iam::{ACCOUNT}:role/Admin", admin, SIGN)
        assert not may_use_key(template, key_id, template.arn(publisher_role), admin, SIGN)
        assert not may_use_key(template, key_id, "arn:aws:iam::999999999999:role/x", admin, SIGN)
        for host in hosts_of(template):
            agent = template.managed_policy(AGENT + host)
            assert not may_use_key(template, key_id, f"arn:aws:iam::{ACCOUNT}:role/agent-{host}", agent, SIGN)
            # An agent may read the public key (only used with --trusted-kms-keys)
            assert may_use_key(template, key_id, f"arn:aws:iam::{ACCOUNT}:role/agent-{host}", agent,
                               "kms:GetPublicKey")
    # And no IAM policy in the stack grants kms:Sign at all: the key policy is the only grant
    for kind in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"):
        for policy in template.of_type(kind).values():
            for st in template.statements(policy["Properties"]["PolicyDocument"]):
                assert not any(_match(a, SIGN) for a in st.actions), st


HISTORY = (keys.release_key(1), keys.release_key(123_456), keys.shard_key("ab" * 32))


def test_the_release_history_is_read_by_hosts_and_written_only_by_the_validator(template: Template) -> None:
    # Hosts (their agents, and the Airflow bundle running with the host's credentials) read any past release
    for host in hosts_of(template):
        agent = template.managed_policy(AGENT + host)
        for key in HISTORY:
            assert allowed(agent, "s3:GetObject", obj(template, key)), (host, key)
            for action in WRITES:
                assert not allowed(agent, action, obj(template, key)), (host, action, key)
    # The publisher reads it (history, rollback) and never writes it
    publisher = template.managed_policy(PUBLISHER)
    for key in HISTORY:
        assert allowed(publisher, "s3:GetObject", obj(template, key)), key
        for action in WRITES:
            assert not allowed(publisher, action, obj(template, key)), (action, key)
    # The validator writes roots and shards, and deletes nothing (the history only expires, by lifecycle)
    validator = template.role_policies("ValidatorRole")
    for key in HISTORY:
        assert allowed(validator, "s3:PutObject", obj(template, key)), key
        for action in WRITES[1:]:
            assert not allowed(validator, action, obj(template, key)), (action, key)
