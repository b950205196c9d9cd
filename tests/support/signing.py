"""The tests' release signing key: every release a test writes (by hand or through the validator) is signed with
it, and every consumer a test starts trusts it, so the suites run signed end to end. `OTHER` is a key nobody
trusts, for forged releases."""

from __future__ import annotations

from pathlib import Path

from dagsync.core.signatures import LocalKeySigner, TrustedKeys, public_pem

SIGNER = LocalKeySigner()
OTHER = LocalKeySigner()
VERIFIER = TrustedKeys([SIGNER.public_key])


def trusted_keys_file(folder: Path, signer: LocalKeySigner = SIGNER, name: str = "release-signing.pem") -> Path:
    """The signer's public key as a PEM file in `folder` (what DAGSYNC_TRUSTED_KEYS names)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(public_pem(signer.public_key))
    return path

# A validator's keyword arguments in tests: signs with the tests' key and builds only on what that key signed.
KEYS = {"signer": SIGNER, "verifier": VERIFIER}
