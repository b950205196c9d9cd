"""The release signing keys: asymmetric KMS keys (ECC_NIST_P256, ECDSA_SHA_256) whose private half never leaves KMS.

Only the validator's role may sign, and only with the active key: its key policy says so (an explicit deny for every
other principal, whatever IAM policies grant), so no administrator, CI role or stolen credential can make a release
that hosts accept. During a rotation there are two keys: the new one is created (and its public key pinned on
every host) before the validator switches to it (docs/infrastructure.md, "Rotating the signing key")."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from dagsync.core.topology import Topology

SIGN = "kms:Sign"
READ_PUBLIC_KEY = "kms:GetPublicKey"
# What the account's administrators keep (through IAM): manage, describe and read the public key, never sign.
ADMIN_ACTIONS = [
    "kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*", "kms:Update*", "kms:Revoke*",
    "kms:Disable*", "kms:Get*", "kms:Delete*", "kms:TagResource", "kms:UntagResource", "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
]
DELETION_WINDOW = Duration.days(30)  # a key dropped from cdk.json can be recovered for 30 days


class ReleaseSigningKeys(Construct):
    """One key per name in `names`; `active` is the one the validator signs with (`signer`: its role)."""

    def __init__(self, scope: Construct, id_: str, *, topology: Topology, names: tuple[str, ...], active: str,
                 signer: iam.IRole) -> None:
        super().__init__(scope, id_)
        if active not in names:
            raise ValueError(f"the active signing key {active!r} is not one of {names}")
        self.keys: dict[str, kms.Key] = {
            name: kms.Key(
                self, f"Key-{name}",
                description=f"Signs {topology.prefix} releases (dagsync validator); hosts pin its public key",
                alias=topology.signing_key_alias(name),
                key_spec=kms.KeySpec.ECC_NIST_P256,
                key_usage=kms.KeyUsage.SIGN_VERIFY,
                policy=key_policy(signer, signs=name == active),
                removal_policy=RemovalPolicy.DESTROY,
                pending_window=DELETION_WINDOW,
            )
            for name in names
        }
        self.active = self.keys[active]

    @property
    def others(self) -> list[kms.Key]:
        """The keys the validator trusts but does not sign with (the previous or the next one, during a rotation)."""
        return [k for k in self.keys.values() if k is not self.active]


def key_policy(signer: iam.IRole, *, signs: bool) -> iam.PolicyDocument:
    """Administrators manage the key; the validator's role reads its public key and, on the active key, signs;
    nobody else may sign, whatever their IAM policies say."""
    return iam.PolicyDocument(statements=[
        iam.PolicyStatement(sid="Administration", principals=[iam.AccountRootPrincipal()], actions=ADMIN_ACTIONS,
                            resources=["*"]),
        iam.PolicyStatement(sid="ValidatorSigns" if signs else "ValidatorReadsThePublicKey",
                            principals=[iam.ArnPrincipal(signer.role_arn)],
                            actions=[SIGN, READ_PUBLIC_KEY] if signs else [READ_PUBLIC_KEY], resources=["*"]),
        iam.PolicyStatement(sid="NobodyElseSigns", effect=iam.Effect.DENY, principals=[iam.AnyPrincipal()],
                            actions=[SIGN], resources=["*"],
                            conditions={"ArnNotEquals": {"aws:PrincipalArn": signer.role_arn}}),
    ])
