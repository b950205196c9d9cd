"""Release signatures (dagsync.core.signatures): what a signature covers, which keys are trusted, and why a root is
refused. The Verifier tested here is the one every consumer builds from its settings: the agent, `once`, and the
Airflow bundle (verifier_from)."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from dagsync.core import keys, releases, signatures
from dagsync.core.models import ManifestWrite, ReleasedProject
from dagsync.core.serde import canonical
from dagsync.core.signatures import LocalKeySigner, TrustedKeys, TrustError, verifier_from
from tests.support import signing
from tests.support.forgery import FORMS, forge
from tests.support.projects import TEST_CHAIN, write_release
from tests.support.store import FakeStore

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def entry(project: str, version: str) -> ReleasedProject:
    return ReleasedProject(version=version, archive_key=keys.archive_key(project, version),
                           sha256=hashlib.sha256(f"{project}{version}".encode()).hexdigest(), size=10, files=1,
                           uncompressed_size=20)


def signed_root(signer: releases.Signer | None, sequence: int = 1, count: int = 3) -> dict[str, Any]:
    made = releases.compose(sequence=sequence, chain=TEST_CHAIN, manifest=ManifestWrite(etag='"m"'), now=NOW,
                            after={f"p{i}": entry(f"p{i}", "1") for i in range(count)})
    return dict(json.loads(releases.encode_root(made.root, signer)))


def pem_file(tmp_path: Path, key: Any, name: str = "key.pem") -> Path:
    path = tmp_path / name
    path.write_bytes(key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return path


def test_a_signed_root_verifies_and_its_key_id_is_the_sha256_of_the_public_key() -> None:
    # Given a root signed by the tests' key
    root = signed_root(signing.SIGNER)
    # Then the trusted key accepts it, and the key id is sha256 (hex) of the DER SubjectPublicKeyInfo
    signing.VERIFIER.verify(root)
    der = signing.SIGNER.public_key.public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
    assert root["signature"]["key_id"] == hashlib.sha256(der).hexdigest() == signing.SIGNER.key_id
    assert root["signature"]["algorithm"] == "ECDSA_SHA_256"
    # And the signature is ECDSA P-256 / SHA-256 over the sha256 of the canonical root without its signature
    signing.SIGNER.public_key.verify(base64.b64decode(root["signature"]["value"]),
                                     hashlib.sha256(releases.signed_payload(root)).digest(),
                                     ec.ECDSA(hashes.SHA256()))


def forms(genuine: dict[str, Any]) -> dict[str, tuple[dict[str, Any], str]]:
    """Every way a root can be forged, with the reason it must be refused."""
    other = signed_root(signing.SIGNER, sequence=2)
    altered = {**genuine, "project_count": genuine["project_count"] + 1}
    return {
        "no signature": ({k: v for k, v in genuine.items() if k != "signature"}, signatures.MISSING),
        "garbage signature": ({**genuine, "signature": {**genuine["signature"], "value": base64.b64encode(
            b"\x30\x44" + b"\x07" * 68).decode()}}, signatures.BAD_SIGNATURE),
        "not base64": ({**genuine, "signature": {**genuine["signature"], "value": "%%%"}}, signatures.MALFORMED),
        "another algorithm": ({**genuine, "signature": {**genuine["signature"], "algorithm": "RSASSA_PSS_SHA_256"}},
                              signatures.MALFORMED),
        "not a mapping": ({**genuine, "signature": "signed, trust me"}, signatures.MALFORMED),
        "another release's signature": ({**other, "signature": genuine["signature"]}, signatures.BAD_SIGNATURE),
        "content altered after signing": (altered, signatures.BAD_SIGNATURE),
        "signed by a key not trusted": (signed_root(signing.OTHER), signatures.UNTRUSTED_KEY),
        "a trusted key id on another key's signature": (
            {**signed_root(signing.OTHER), "signature": {**signed_root(signing.OTHER)["signature"],
                                                         "key_id": signing.SIGNER.key_id}},
            signatures.BAD_SIGNATURE),
    }


@pytest.mark.parametrize("form", list(forms(signed_root(signing.SIGNER))))
def test_a_forged_root_is_refused_naming_why(form: str) -> None:
    # Given a forged root
    root, reason = forms(signed_root(signing.SIGNER))[form]
    # When the trusted keys check it / Then it is refused, with the reason counted and a message a person can act on
    with pytest.raises(releases.UntrustedRelease) as refused:
        signing.VERIFIER.verify(root)
    assert refused.value.reason == reason
    assert "signature" in str(refused.value)


def test_read_root_names_the_document_and_keeps_the_reason() -> None:
    store = FakeStore()
    store.put(keys.RELEASE_KEY, json.dumps(signed_root(signing.OTHER)).encode())
    with pytest.raises(releases.UntrustedRelease, match=r"^release.json refused: its signature is by key") as refused:
        releases.read_root(store, signing.VERIFIER)
    assert refused.value.reason == signatures.UNTRUSTED_KEY


def test_a_large_root_is_signed_whatever_its_size() -> None:
    # Given a root of 5,000 projects (every shard in its table: far above KMS's 4 KB limit for raw messages)
    root = signed_root(signing.SIGNER, count=5000)
    assert len(releases.signed_payload(root)) > 4096
    # Then what is signed is 32 bytes, and the root verifies
    assert len(signatures.message(releases.signed_payload(root))) == 32
    signing.VERIFIER.verify(root)


def test_verifier_from_pem_files_given_as_a_list_or_a_comma_separated_string(tmp_path: Path) -> None:
    # Given the public keys of two signers in PEM files (a rotation: the old key and the new one)
    old, new = LocalKeySigner(), LocalKeySigner()
    files = [pem_file(tmp_path, old.public_key, "old.pem"), pem_file(tmp_path, new.public_key, "new.pem")]
    for given in (files, f" {files[0]} ,{files[1]},", [str(f) for f in files]):
        # When a consumer builds its Verifier from its settings
        verifier = verifier_from(given)
        # Then roots of both keys are trusted, and a third key's are not
        assert isinstance(verifier, TrustedKeys) and verifier.key_ids == sorted([old.key_id, new.key_id])
        verifier.verify(signed_root(old))
        verifier.verify(signed_root(new))
        with pytest.raises(releases.UntrustedRelease):
            verifier.verify(signed_root(signing.SIGNER))


def test_without_trusted_keys_only_an_explicit_opt_out_accepts_unsigned(tmp_path: Path) -> None:
    for nothing in (None, "", " , ", []):
        with pytest.raises(TrustError, match="no trusted release signing keys"):
            verifier_from(nothing)
    lax = verifier_from(None, allow_unsigned=True)
    assert isinstance(lax, releases.AcceptUnsigned)
    lax.verify({k: v for k, v in signed_root(None).items()})
    # Both at once is refused: nobody should believe signatures are checked when they are not, or the reverse
    with pytest.raises(TrustError, match="both set"):
        verifier_from(pem_file(tmp_path, signing.SIGNER.public_key), allow_unsigned=True)


@pytest.mark.parametrize("bad", ["missing", "empty", "private key", "rsa", "p384", "certificate garbage"])
def test_a_bad_trusted_key_file_is_refused_naming_the_file(tmp_path: Path, bad: str) -> None:
    path = tmp_path / f"{bad}.pem"
    if bad == "empty":
        path.write_bytes(b"")
    elif bad == "private key":
        path.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    elif bad == "rsa":
        pem_file(tmp_path, rsa.generate_private_key(65537, 2048).public_key(), path.name)
    elif bad == "p384":
        pem_file(tmp_path, ec.generate_private_key(ec.SECP384R1()).public_key(), path.name)
    elif bad == "certificate garbage":
        path.write_bytes(b"-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n")
    with pytest.raises(TrustError, match=str(path).replace(".", r"\.")) as refused:
        verifier_from([path])
    if bad in ("rsa", "p384"):
        assert "not an ECC_NIST_P256" in str(refused.value)


def test_the_signature_is_checked_on_the_stored_bytes_and_nothing_may_follow_or_precede_it() -> None:
    # Given a signed root as stored (canonical bytes, the signature its last key)
    stored = releases.encode_root(releases.compose(
        sequence=1, chain=TEST_CHAIN, manifest=ManifestWrite(etag='"m"'), now=NOW,
        after={f"p{i}": entry(f"p{i}", "1") for i in range(3)}).root, signing.SIGNER)
    root = json.loads(stored)
    # Then the payload cut from the bytes is exactly what was signed, and the root verifies on it
    assert releases.stored_payload(stored, root) == releases.signed_payload(root)
    signing.VERIFIER.verify(root, stored=stored)
    # When a key is added after the signature, or a signed key is given a second value before it (JSON parsers keep
    # the last one), the bytes are not a payload plus its signature, and the root is refused all the same
    evil = canonical({"99": "f" * 64})
    after = stored[:-1] + b',"shards":' + evil + b"}"
    before = stored[:stored.rfind(b',"signature":')] + b',"shards":' + evil + stored[stored.rfind(b',"signature":'):]
    for forged in (after, before):
        raw = json.loads(forged)
        assert raw["shards"] == {"99": "f" * 64}
        with pytest.raises(releases.UntrustedRelease) as refused:
            signing.VERIFIER.verify(raw, stored=forged)
        assert refused.value.reason == signatures.BAD_SIGNATURE
    # And a root stored otherwise than canonically (whitespace) still verifies on its content
    spaced = json.dumps(root, indent=1).encode()
    assert releases.stored_payload(spaced, root) is None
    signing.VERIFIER.verify(json.loads(spaced), stored=spaced)


@pytest.mark.parametrize("form", list(FORMS))
def test_the_verifier_the_airflow_bundle_builds_refuses_every_hand_written_release(form: str, tmp_path: Path) -> None:
    # Given the Verifier the bundle builds from its settings (a comma-separated DAGSYNC_TRUSTED_KEYS), and
    # releases 1 and 2 by the validator, then release.json written by hand in this form
    verifier = verifier_from(str(signing.trusted_keys_file(tmp_path / "keys")), allow_unsigned=False)
    store = FakeStore()
    for sequence in (1, 2):
        write_release(store, tmp_path / "src", sequence, {"alpha": (f"{sequence}.0", {"dag.py": f"a = {sequence}\n"})})
    reason = forge(store, form, tmp_path / "forged")
    # When it reads the current release as the bundle does (root, newest check, shards)
    with pytest.raises(releases.UntrustedRelease) as refused:
        stored = releases.read_root(store, verifier)
        assert stored is not None
        releases.check_newest(store, stored.root.sequence)
        releases.load_shards(store, stored.root, releases.ShardCache())
    # Then it is refused, with the reason the agent counts it under
    assert refused.value.reason == reason
    # And every release of the history still reads and verifies
    for sequence in (1, 2):
        assert releases.read_release(store, verifier, sequence=sequence) is not None
