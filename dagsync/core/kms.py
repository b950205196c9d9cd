"""The KMS adapter: release roots signed by an asymmetric KMS key (ECC_NIST_P256, ECDSA_SHA_256), whose private
half never leaves KMS, and public keys read from KMS. Takes a client built by dagsync.core.aws."""

from __future__ import annotations

import base64
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from dagsync.core.models import Signature
from dagsync.core.signatures import ALGORITHM, key_id, load_public_key, message

KEY_SPEC = "ECC_NIST_P256"
KEY_USAGE = "SIGN_VERIFY"


def public_key(client: Any, key: str) -> ec.EllipticCurvePublicKey:
    """The public half of KMS key `key` (id, ARN or alias). Errors (KMS unreachable, no such key, access denied)
    are botocore's, for the caller to report."""
    resp = client.get_public_key(KeyId=key)
    if resp.get("KeySpec") not in (None, KEY_SPEC) or ALGORITHM not in resp.get("SigningAlgorithms", [ALGORITHM]):
        raise ValueError(f"KMS key {key} is {resp.get('KeySpec')} with {resp.get('SigningAlgorithms')}; release "
                         f"signing needs {KEY_SPEC} with {ALGORITHM}")
    return load_public_key(resp["PublicKey"], f"the public key of KMS key {key}")


class KmsSigner:
    """Signs release roots with KMS key `key`. Its public key is read once, here, for the key id."""

    def __init__(self, client: Any, key: str) -> None:
        self.client = client
        self.key = key
        self.public_key = public_key(client, key)
        self.key_id = key_id(self.public_key)

    def sign(self, payload: bytes) -> Signature:
        resp = self.client.sign(KeyId=self.key, Message=message(payload), MessageType="RAW",
                                SigningAlgorithm=ALGORITHM)
        return Signature(key_id=self.key_id, algorithm=ALGORITHM, value=base64.b64encode(resp["Signature"]).decode())


def create_signing_key(client: Any, alias: str, description: str) -> str:
    """A new signing key with `alias` (the local stack's; the CDK stack declares its own). Returns its ARN."""
    arn = str(client.create_key(KeySpec=KEY_SPEC, KeyUsage=KEY_USAGE, Description=description)["KeyMetadata"]["Arn"])
    client.create_alias(AliasName=alias, TargetKeyId=arn)
    return arn
