"""Release signing against moto's KMS (in-process): the validator Lambda signs every root with its KMS key, hosts
verify it offline with the pinned public key, a key rotation keeps every host applying, and KMS being down during
validation leaves the current release in place until a retry succeeds."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from botocore.exceptions import EndpointConnectionError

from dagsync.agent.config import load_config
from dagsync.agent.loop import make_syncer
from dagsync.agent.metrics import Metrics
from dagsync.agent.sync import Syncer
from dagsync.agent.trust import build_verifier
from dagsync.core import keys, kms, releases, signatures
from dagsync.core.documents import read_release
from dagsync.core.store import S3Store
from dagsync.lambdas.invoke import InvocationContext
from dagsync.local.stack import write_trusted_key
from dagsync.publish.publisher import publish
from tests.integration.conftest import event
from tests.support.projects import EXAMPLES


def validate(handler: Any) -> dict[str, Any]:
    return dict(handler.lambda_handler(event("scheduled.json"), InvocationContext()))


def use_keys(handler: Any, aws: dict[str, Any], signing_key: str, *trusted: str) -> None:
    """The validator from now on signs with `signing_key` and builds on roots of `trusted` too (a new container)."""
    handler.configure(handler.Settings(bucket=aws["bucket"], topic_arn=aws["topic_arn"],
                                       signing_key_id=signing_key, trusted_key_ids=trusted))


def host(aws: dict[str, Any], tmp_path: Path, name: str, *pem: Path) -> Syncer:
    """An agent trusting exactly the PEM files given, built as `dagsync-agent` builds one."""
    cfg = load_config({"dags_dir": str(tmp_path / name), "bucket": aws["bucket"], "host": name,
                       "trusted_keys": ",".join(map(str, pem))}, {})
    return make_syncer(cfg, Metrics(), threading.Event(), write_status=True, verifier=build_verifier(cfg))


def refused(syncer: Syncer, reason: str) -> float:
    return syncer.metrics.registry.get_sample_value("dagsync_agent_releases_refused_total", {"reason": reason}) or 0


@pytest.fixture
def kms_client(aws: dict[str, Any]) -> Any:
    return aws["settings"].client("kms")


@pytest.fixture
def pem(aws: dict[str, Any], tmp_path: Path) -> Path:
    """The environment's public key, exported to a PEM file as an operator pins it on hosts."""
    return write_trusted_key(aws["settings"], aws["signing_key_arn"], tmp_path / "keys" / "release-signing.pem")


def test_every_root_the_validator_writes_is_signed_by_its_kms_key(aws: dict[str, Any], store: S3Store,
                                                                    handler: Any, pem: Path,
                                                                    kms_client: Any) -> None:
    # Given two published projects
    publish(store, "sales", "1.0.0", EXAMPLES / "sales", promote_now=True, published_by="ci")
    publish(store, "finance", "1.0.0", EXAMPLES / "finance", promote_now=True, published_by="ci")
    # When the validator Lambda releases them
    assert validate(handler)["outcome"] == "accepted"
    # Then release.json and its history copy are the same signed bytes, by the key whose id is the sha256 of
    # the DER public key KMS returns, and the public key pinned from a PEM file verifies it offline
    blob, history = store.get(keys.RELEASE_KEY), store.get(keys.release_key(1))
    assert blob is not None and history is not None and blob.data == history.data
    stored = releases.read_root(store, signatures.verifier_from([pem]))
    assert stored is not None and stored.root.signature is not None
    assert stored.root.signature.key_id == signatures.key_id(kms.public_key(kms_client, aws["signing_key_arn"]))


def test_a_root_larger_than_kms_raw_message_limit_is_signed(kms_client: Any, aws: dict[str, Any]) -> None:
    # Given KmsSigner on the environment's key and a payload well over 4 KB
    signer = kms.KmsSigner(kms_client, aws["signing_key_arn"])
    root = {"schema_version": 2, "sequence": 1, "shards": {f"{i:02x}": "0" * 64 for i in range(256)}}
    assert len(releases.signed_payload(root)) > 16_000
    # When it signs / Then the signature verifies offline
    root["signature"] = signer.sign(releases.signed_payload(root)).model_dump(mode="json")
    signatures.TrustedKeys([signer.public_key]).verify(root)


def test_key_rotation_hosts_trust_the_new_key_before_the_validator_switches(
    aws: dict[str, Any], store: S3Store, handler: Any, kms_client: Any, pem: Path, tmp_path: Path
) -> None:
    # Given release 1 signed by the current key, and a host that trusts it
    old = aws["signing_key_arn"]
    publish(store, "sales", "1.0.0", EXAMPLES / "sales", promote_now=True, published_by="ci")
    assert validate(handler)["outcome"] == "accepted"
    laggard = host(aws, tmp_path, "laggard", pem)
    assert laggard.sync(full=True).outcome == "success"
    # When a new key is created and its public key is pinned on a host next to the old one (step 1 of a rotation)
    new = kms.create_signing_key(kms_client, "alias/dagsync-release-signing-2", "the next key")
    new_pem = write_trusted_key(aws["settings"], new, tmp_path / "keys" / "release-signing-2.pem")
    ready = host(aws, tmp_path, "ready", pem, new_pem)
    assert ready.sync(full=True).outcome == "success"
    # And the validator switches to the new key, still trusting the old one for the root it builds on (step 2)
    use_keys(handler, aws, new, old)
    publish(store, "sales", "1.1.0", EXAMPLES / "sales", promote_now=True, published_by="ci")
    assert validate(handler)["outcome"] == "accepted"
    # Then the release continues the same chain, signed by the new key
    release, _ = read_release(store)
    assert release is not None and release.sequence == 2 and release.projects["sales"].version == "1.1.0"
    first = releases.read_root(store, signatures.verifier_from([pem]), sequence=1)
    assert first is not None and release.chain == first.root.chain
    # And the host that trusts both applies it; the host that was not told about the new key refuses it, keeps its
    # DAGs, and says why
    assert ready.sync(full=True).outcome == "success" and ready.state.versions() == {"sales": "1.1.0"}
    late = laggard.sync(full=True)
    assert late.outcome == "error" and "not trusted" in (late.error or "")
    assert laggard.state.versions() == {"sales": "1.0.0"} and refused(laggard, "untrusted_key") == 1
    # When the old key is retired from the validator (step 3: every host has the new one)
    use_keys(handler, aws, new)
    publish(store, "sales", "1.2.0", EXAMPLES / "sales", promote_now=True, published_by="ci")
    assert validate(handler)["outcome"] == "accepted"
    # Then the chain goes on
    assert read_release(store)[0].sequence == 3  # type: ignore[union-attr]
    assert ready.sync(full=True).outcome == "success" and ready.state.versions() == {"sales": "1.2.0"}


@pytest.fixture
def kms_down() -> Iterator[threading.Event]:
    """While set, every KMS call of every client made from the process's session fails as an unreachable endpoint.
    (S3 keeps working: only KMS is out.)"""
    from dagsync.core.aws import _session

    down = threading.Event()

    def fail(**_: Any) -> None:
        if down.is_set():
            raise EndpointConnectionError(endpoint_url="https://kms.us-east-1.amazonaws.com")

    _session().events.register("before-call.kms", fail)
    yield down
    _session().events.unregister("before-call.kms", fail)


@pytest.mark.parametrize("when", ["warm container (Sign)", "cold start (GetPublicKey)"])
def test_kms_down_during_validation_leaves_the_release_in_place_and_is_retried(
    aws: dict[str, Any], store: S3Store, handler: Any, kms_down: threading.Event, when: str,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given release 1, by a function configured from its environment as deployed
    for name, value in (("DAGSYNC_BUCKET", aws["bucket"]), ("DAGSYNC_TOPIC_ARN", aws["topic_arn"]),
                        ("DAGSYNC_SIGNING_KEY_ID", aws["signing_key_arn"])):
        monkeypatch.setenv(name, value)
    handler.configure(None)
    publish(store, "sales", "1.0.0", EXAMPLES / "sales", promote_now=True, published_by="ci")
    assert validate(handler)["outcome"] == "accepted"
    before = {k: store.get(k) for k in store.list_keys("")}
    # When a new version is promoted while KMS does not answer
    publish(store, "sales", "1.1.0", EXAMPLES / "sales", promote_now=True, published_by="ci")
    written = set(store.list_keys(""))
    kms_down.set()
    if when.startswith("cold"):
        handler.configure(None)  # a new container: it reads its public keys from KMS first
    # Then the invocation for the S3 event fails (every record of the batch failed: SQS delivers them again), the
    # scheduled run fails (it runs again in a minute), and nothing was written: release.json, its history and the
    # shards are as they were
    with pytest.raises(BatchProcessingError, match="All records failed"):
        handler.lambda_handler(event("sqs_manifest_created.json"), InvocationContext())
    with pytest.raises(EndpointConnectionError):
        validate(handler)
    assert set(store.list_keys("")) == written
    assert store.get(keys.RELEASE_KEY) == before[keys.RELEASE_KEY]
    # When KMS is back / Then the retry releases the change
    kms_down.clear()
    assert validate(handler)["outcome"] == "accepted"
    release, _ = read_release(store)
    assert release is not None and release.sequence == 2 and release.projects["sales"].version == "1.1.0"


def test_the_provisioned_key_has_the_algorithm_hosts_expect(aws: dict[str, Any], kms_client: Any) -> None:
    meta = kms_client.describe_key(KeyId=aws["signing_key_arn"])["KeyMetadata"]
    assert (meta["KeySpec"], meta["KeyUsage"]) == (kms.KEY_SPEC, kms.KEY_USAGE)
    assert signatures.ALGORITHM in meta["SigningAlgorithms"]


def test_the_function_reads_its_keys_from_the_environment_the_stack_sets() -> None:
    from dagsync.lambdas.validator import Settings

    settings = Settings.from_env({"DAGSYNC_BUCKET": "bkt", "DAGSYNC_TOPIC_ARN": "arn:t",
                                  "DAGSYNC_SIGNING_KEY_ID": "arn:aws:kms:us-east-1:1:key/new",
                                  "DAGSYNC_TRUSTED_KEY_IDS": "arn:aws:kms:us-east-1:1:key/old, ,"})
    assert settings.signing_key_id.endswith("key/new")
    assert settings.trusted_key_ids == ("arn:aws:kms:us-east-1:1:key/old",)
    # Without a signing key the function does not start: it never writes an unsigned release
    with pytest.raises(ValueError, match="signing_key_id"):
        Settings.from_env({"DAGSYNC_BUCKET": "bkt", "DAGSYNC_TOPIC_ARN": "arn:t"})
