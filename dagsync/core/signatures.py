"""Release signatures: what is signed, who is trusted, and the check every consumer runs before it applies anything.

A root is signed with ECDSA P-256 / SHA-256 (KMS `ECDSA_SHA_256`) over `message(signed_payload(root))`: the
32-byte sha256 of the root's canonical bytes without its signature. Signing the digest as the message keeps the
signed message at 32 bytes, within KMS's 4 KB limit for raw messages whatever the size of the root, and it is the
same call under KMS and under moto (whose Sign ignores MessageType=DIGEST). A key is named by the sha256 (hex) of
its DER SubjectPublicKeyInfo, so a key id means the same thing everywhere and cannot be chosen by whoever signs.

`verifier_from(trusted_keys, allow_unsigned)` is the one way to build a consumer's Verifier from its settings."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import ValidationError

from dagsync.core.models import Signature
from dagsync.core.releases import AcceptUnsigned, UntrustedRelease, Verifier, signed_payload, stored_payload

CURVE = "secp256r1"  # NIST P-256, KMS key spec ECC_NIST_P256
ALGORITHM: Final = "ECDSA_SHA_256"

# Why a root was refused (UntrustedRelease.reason), as counted by the agent.
MISSING = "missing_signature"
MALFORMED = "malformed_signature"
UNTRUSTED_KEY = "untrusted_key"
BAD_SIGNATURE = "bad_signature"


class TrustError(ValueError):
    """The trust settings are unusable (no key and no explicit opt-out, a file that is not a P-256 public key, ...).
    The message names the setting or the file."""


def message(payload: bytes) -> bytes:
    """What is signed: the sha256 of the payload (a root's canonical bytes without its signature)."""
    return hashlib.sha256(payload).digest()


def spki_der(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_id(key: ec.EllipticCurvePublicKey) -> str:
    """sha256 (hex) of the key's DER SubjectPublicKeyInfo: what `Signature.key_id` names."""
    return hashlib.sha256(spki_der(key)).hexdigest()


def public_pem(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _p256(key: Any, what: str) -> ec.EllipticCurvePublicKey:
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != CURVE:
        kind = key.curve.name if isinstance(key, ec.EllipticCurvePublicKey) else type(key).__name__
        raise TrustError(f"{what} is not an ECC_NIST_P256 (secp256r1) public key: it is {kind}")
    return key


def load_public_key(data: bytes, what: str) -> ec.EllipticCurvePublicKey:
    """A P-256 public key from PEM (or DER SubjectPublicKeyInfo, as KMS GetPublicKey returns it)."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(data)
        else:
            key = serialization.load_der_public_key(data)
    except (ValueError, TypeError) as exc:
        raise TrustError(f"{what} is not a PEM public key ({exc})") from None
    return _p256(key, what)


def load_public_key_file(path: str | os.PathLike[str]) -> ec.EllipticCurvePublicKey:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TrustError(f"trusted key file {path}: {exc.strerror or exc}") from None
    return load_public_key(data, f"trusted key file {path}")


def short(key: str) -> str:
    return key[:12]


class TrustedKeys:
    """Trusts a root signed (ECDSA_SHA_256) by one of these public keys, and nothing else."""

    def __init__(self, keys: Iterable[ec.EllipticCurvePublicKey]) -> None:
        self._keys = {key_id(k): k for k in keys}
        if not self._keys:
            raise TrustError("no trusted keys given")

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._keys)

    def verify(self, root: Mapping[str, Any], stored: bytes | None = None) -> None:
        """Raises UntrustedRelease naming why (its `reason`: MISSING, MALFORMED, UNTRUSTED_KEY, BAD_SIGNATURE).
        `stored`: the bytes `root` was parsed from; the signature is checked on them when they are canonical (no
        encoding again), else on the root encoded again."""
        raw = root.get("signature")
        if raw is None:
            raise UntrustedRelease("it has no signature; only releases signed by a trusted key "
                                   f"({', '.join(map(short, self.key_ids))}) are accepted", MISSING)
        try:
            signature = Signature.model_validate(raw)
            der = base64.b64decode(signature.value, validate=True)
        except (ValidationError, binascii.Error, TypeError) as exc:
            first = str(exc).splitlines()[0] if isinstance(exc, ValidationError) else str(exc)
            raise UntrustedRelease(f"its signature is malformed ({first})", MALFORMED) from None
        key = self._keys.get(signature.key_id)
        if key is None:
            raise UntrustedRelease(f"its signature is by key {short(signature.key_id)}, which is not trusted "
                                   f"(trusted: {', '.join(map(short, self.key_ids))})", UNTRUSTED_KEY)
        cut = stored_payload(stored, root) if stored is not None else None
        if cut is not None and _valid(key, der, cut):
            return
        if not _valid(key, der, signed_payload(root)):  # the root encoded again: it may have been stored otherwise
            raise UntrustedRelease(f"its signature by key {short(signature.key_id)} does not match its content: "
                                   "altered after signing, or the signature of another release", BAD_SIGNATURE)


def _valid(key: ec.EllipticCurvePublicKey, der: bytes, payload: bytes) -> bool:
    try:
        key.verify(der, message(payload), ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


def _paths(trusted_keys: str | os.PathLike[str] | Iterable[str | os.PathLike[str]] | None) -> list[str]:
    if trusted_keys is None:
        return []
    if isinstance(trusted_keys, str):
        return [p.strip() for p in trusted_keys.split(",") if p.strip()]
    if isinstance(trusted_keys, os.PathLike):
        return [os.fspath(trusted_keys)]
    return [os.fspath(p) for p in trusted_keys if os.fspath(p).strip()]


def verifier_from(trusted_keys: str | os.PathLike[str] | Iterable[str | os.PathLike[str]] | None,
                  allow_unsigned: bool = False, *,
                  extra_keys: Iterable[ec.EllipticCurvePublicKey] = ()) -> Verifier:
    """The Verifier a consumer's settings ask for: `trusted_keys` are PEM files (paths, or one string of
    comma-separated paths, as in DAGSYNC_TRUSTED_KEYS); `extra_keys` public keys obtained otherwise (fetched from
    KMS at start-up, when a deployment opted in). With neither, only `allow_unsigned=True` gives a Verifier (one
    that accepts everything); both at once is refused, so that nobody believes signatures are checked when they
    are not, or the reverse. TrustError names what is wrong."""
    keys = [load_public_key_file(p) for p in _paths(trusted_keys)] + list(extra_keys)
    if keys and allow_unsigned:
        raise TrustError("trusted keys and allow_unsigned are both set: choose one (with trusted keys, unsigned "
                         "releases are refused)")
    if keys:
        return TrustedKeys(keys)
    if allow_unsigned:
        return AcceptUnsigned()
    raise TrustError("no trusted release signing keys: give the validator's public key (PEM files, "
                     "DAGSYNC_TRUSTED_KEYS) or, to accept unsigned releases, allow that explicitly "
                     "(--allow-unsigned)")


class LocalKeySigner:
    """Signs with a private key held in this process: for tests, benchmarks and tools. Deployments sign with KMS
    (dagsync.core.kms.KmsSigner), so that the private key never leaves it."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey | None = None) -> None:
        self.private_key = private_key or ec.generate_private_key(ec.SECP256R1())
        self.public_key = self.private_key.public_key()
        self.key_id = key_id(self.public_key)

    def sign(self, payload: bytes) -> Signature:
        der = self.private_key.sign(message(payload), ec.ECDSA(hashes.SHA256()))
        return Signature(key_id=self.key_id, algorithm=ALGORITHM, value=base64.b64encode(der).decode())
