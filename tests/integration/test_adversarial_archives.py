"""Hostile archives are refused with a clear reason, and nothing is written outside the store: by the safe
extractor itself, by the validator when they are uploaded straight to S3 (bypassing the CLI), and by the agent
when a hand-written release.json points at one with the right sha256."""

from __future__ import annotations

import hashlib
import io
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dagsync.core import keys
from dagsync.core.archive import UnsafeArchive, extract, iter_members
from dagsync.core.documents import read_release
from dagsync.core.models import Catalog, CatalogEntry, Manifest, Release, ReleasedProject
from dagsync.core.serde import dump_yaml
from dagsync.core.store import S3Store
from dagsync.gate.validator import Validator
from dagsync.publish.publisher import publish
from tests.integration.adversarial import HOSTILE_ARCHIVES, Hostile
from tests.support import signing
from tests.support.projects import EXAMPLES, put_release

_BUILT: dict[str, bytes] = {}
CASES = [pytest.param(h, id=h.name.replace(" ", "-")) for h in HOSTILE_ARCHIVES]


def built(hostile: Hostile) -> bytes:
    if hostile.name not in _BUILT:
        _BUILT[hostile.name] = hostile.build()
    return _BUILT[hostile.name]


def everything_under(root: Path) -> set[str]:
    return {os.path.relpath(os.path.join(d, n), root) for d, dirs, files in os.walk(root) for n in dirs + files}


def test_there_are_at_least_15_kinds_of_hostile_archive() -> None:
    assert len(HOSTILE_ARCHIVES) >= 15


@pytest.mark.parametrize("hostile", CASES)
def test_the_safe_extractor_refuses_it_and_writes_nothing_outside_its_folder(hostile: Hostile, tmp_path: Path) -> None:
    # Given a hostile archive and an extraction folder inside a box we can watch
    box = tmp_path / "box"
    box.mkdir()
    before = everything_under(tmp_path)
    # When it is read, and when it is extracted
    with pytest.raises(UnsafeArchive) as read:
        for _ in iter_members(io.BytesIO(built(hostile))):
            pass
    with pytest.raises(UnsafeArchive) as extracted:
        extract(io.BytesIO(built(hostile)), box / "dest")
    # Then both refuse it, naming why
    assert hostile.reason in str(read.value) and hostile.reason in str(extracted.value), str(read.value)
    # And nothing appeared anywhere but inside the extraction folder (the caller deletes that)
    after = everything_under(tmp_path)
    assert {p for p in after - before if not p.startswith(os.path.join("box", "dest"))} == set()
    assert not os.path.exists("/tmp/dagsync-evil.py")


def _live_release(store: S3Store) -> tuple[Validator, str]:
    published: list[Any] = []
    validator = Validator(store, **signing.KEYS, on_release=published.append, record_history=False)
    publish(store, "sales", "1.0.0", EXAMPLES / "sales", promote_now=True, published_by="test")
    assert validator.run().status == "accepted"
    blob = store.get(keys.RELEASE_KEY)
    assert blob is not None
    return validator, blob.etag


def _upload_bypassing_the_cli(store: S3Store, data: bytes) -> None:
    """What a compromised CI job could do with the publisher's S3 rights: no dagsync code involved."""
    key = keys.archive_key("evil", "1")
    store.client.put_object(Bucket=store.bucket, Key=key, Body=data)
    entry = CatalogEntry(version="1", archive_key=key, sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                         files=1, uncompressed_size=len(data), dag_ids=["evil_dag"],
                         published_at=datetime.now(UTC), published_by="attacker")
    store.client.put_object(Bucket=store.bucket, Key=keys.catalog_key("evil"),
                            Body=dump_yaml(Catalog(project="evil", entries=[entry])))
    store.client.put_object(Bucket=store.bucket, Key=keys.MANIFEST_KEY,
                            Body=dump_yaml(Manifest(projects={"sales": "1.0.0", "evil": "1"})))


@pytest.mark.parametrize("hostile", CASES)
def test_the_validator_refuses_it_when_uploaded_straight_to_s3(hostile: Hostile, store: S3Store) -> None:
    # Given a live release
    validator, etag = _live_release(store)
    # When a hostile archive, its catalog entry (right sha256) and the manifest are put straight into the bucket
    _upload_bypassing_the_cli(store, built(hostile))
    outcome = validator.run()
    # Then the manifest is rejected with the archive's reason, and release.json is untouched
    assert outcome.status == "rejected" and hostile.reason in outcome.detail, outcome
    blob = store.get(keys.RELEASE_KEY)
    assert blob is not None and blob.etag == etag
    rejection = store.get(keys.REJECTION_KEY)
    assert rejection is not None and hostile.reason.encode() in rejection.data


@pytest.mark.parametrize("hostile", CASES)
def test_the_agent_refuses_it_even_inside_a_hand_written_release(
    hostile: Hostile, aws: dict[str, Any], store: S3Store, tmp_path: Path
) -> None:
    from dagsync.agent.config import AgentConfig
    from dagsync.agent.loop import make_syncer
    from dagsync.agent.metrics import Metrics

    # Given a host synced to a live release
    _live_release(store)
    host = tmp_path / "host"
    dags = host / "dags"
    cfg = AgentConfig(dags_dir=dags, bucket=store.bucket, host="host-1",
                      trusted_keys=(signing.trusted_keys_file(tmp_path / "keys"),))
    syncer = make_syncer(cfg, Metrics(), threading.Event(), write_status=False, verifier=signing.VERIFIER)
    assert syncer.sync(full=True).outcome == "success"
    live = os.readlink(dags / "sales")
    # When release.json is written by hand to point at a hostile archive, right sha256, and signed with a key the
    # host trusts (as if the validator's key were misused: defence in depth behind the signature)
    data = built(hostile)
    key = keys.archive_key("evil", "1")
    store.client.put_object(Bucket=store.bucket, Key=key, Body=data)
    current, _ = read_release(store)
    assert current is not None
    evil = ReleasedProject(version="1", archive_key=key, sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                           files=1, uncompressed_size=len(data))
    forged = Release(sequence=current.sequence + 1, manifest_etag='"forged"', published_at=datetime.now(UTC),
                     projects={**current.projects, "evil": evil}, chain=current.chain)
    put_release(store, forged)
    result = syncer.sync(full=True)
    # Then the agent refuses that project with the archive's reason and keeps the live one as it was
    assert result.outcome == "error" and result.error is not None and hostile.reason in result.error, result
    assert os.readlink(dags / "sales") == live and not os.path.lexists(dags / "evil")
    # And nothing was written outside the store: no evil tree, staging empty, nothing beside the DAG folder
    assert not (dags / ".dagsync" / "store" / "evil").exists()
    assert os.listdir(dags / ".dagsync" / "staging") == []
    assert os.listdir(host) == ["dags"]
    assert sorted(os.listdir(dags)) == [".airflowignore", ".dagsync", "sales"]
