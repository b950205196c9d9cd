"""Ordering: duplicated, delayed and reordered events (and stale reads) never move a host to an older release."""

from __future__ import annotations

import json
import os
import random
import threading
from pathlib import Path
from typing import Any

import pytest

from dagsync.core import keys
from dagsync.core.documents import read_release
from dagsync.core.models import ChangeEvent, Release
from dagsync.core.store import Blob, S3Store
from dagsync.gate.validator import Validator
from dagsync.lambdas.invoke import InvocationContext
from dagsync.local.stack import sqs_event
from dagsync.publish.publisher import promote, publish
from tests.support import signing
from tests.support.projects import write_version

ROUNDS = 60


def release_now(store: S3Store) -> Release:
    release, _ = read_release(store)
    assert release is not None
    return release


def folder_release(dags: Path, releases: list[Release]) -> int | None:
    """The sequence of the release the folder shows (the newest one that matches every link)."""
    for rel in sorted(releases, key=lambda r: -r.sequence):
        if all(os.path.islink(dags / p) and os.readlink(dags / p).endswith(e.tree_name)
               for p, e in rel.projects.items()):
            return rel.sequence
    return None


@pytest.mark.parametrize("history", [False, True], ids=["without-history", "with-history"])
def test_stale_duplicated_and_reordered_release_reads_never_move_the_host_back(store: S3Store, tmp_path: Path,
                                                                                history: bool) -> None:
    from dagsync.agent.config import AgentConfig
    from dagsync.agent.loop import make_syncer
    from dagsync.agent.metrics import Metrics

    # Given six releases built by the validator, each a different mix of versions of two projects
    validator = Validator(store, **signing.KEYS, on_release=lambda _: None, record_history=False)
    for v in (1, 2, 3):
        for project in ("alpha", "beta"):
            publish(store, project, str(v), write_version(tmp_path / "src", project, v), published_by="t")
    bodies: list[bytes] = []
    releases: list[Release] = []
    for alpha, beta in ((1, 1), (2, 1), (2, 2), (3, 2), (1, 3), (3, 3)):
        promote(store, "alpha", str(alpha))
        promote(store, "beta", str(beta))
        assert validator.run().status == "accepted"
        blob = store.get(keys.RELEASE_KEY)
        assert blob is not None
        bodies.append(blob.data)
        releases.append(release_now(store))
    # And a host agent
    dags = tmp_path / "dags"
    cfg = AgentConfig(dags_dir=dags, bucket=store.bucket, host="host-1",
                      trusted_keys=(signing.trusted_keys_file(tmp_path / "keys"),))
    syncer = make_syncer(cfg, Metrics(), threading.Event(), write_status=False, verifier=signing.VERIFIER)
    if not history:  # the sequence rule alone: nothing to tell a put-back release from the newest one
        for key in store.list_keys(keys.RELEASES_PREFIX):
            if keys.parse_release_key(key) is not None:
                store.delete(key)
    rng = random.Random(42)
    newest = 0
    for _ in range(ROUNDS):
        # When release.json is read as a delayed, duplicated or reordered copy (a replica, a restored version,
        # a late retry), and the agent syncs on an event or on its timer
        pick = rng.randrange(len(bodies))
        store.client.put_object(Bucket=store.bucket, Key=keys.RELEASE_KEY, Body=bodies[pick])
        result = syncer.sync(full=rng.random() < 0.5)
        if history and newest < releases[pick].sequence < releases[-1].sequence:
            # Then a copy newer than what the host holds, but older than the history's newest, is refused
            assert result.outcome == "error" and "an older release put back" in (result.error or ""), result
            continue
        assert result.outcome != "error", result.error
        newest = max(newest, releases[pick].sequence)
        # Then the host shows the newest release it ever saw, never an older one
        assert syncer.state.sequence == newest
        assert folder_release(dags, releases) == newest
    assert newest == releases[-1].sequence


def test_reordered_and_duplicated_manifest_events_release_only_the_current_manifest(
    aws: dict[str, Any], store: S3Store, handler: Any, tmp_path: Path
) -> None:
    # Given five manifest writes whose S3 events wait in the queue (the validator has not run yet)
    for v in range(1, 6):
        publish(store, "alpha", str(v), write_version(tmp_path / "src", "alpha", v), promote_now=True,
                published_by="t")
    sqs = aws["settings"].client("sqs")
    messages: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(QueueUrl=aws["manifest_events_queue_url"], MaxNumberOfMessages=10,
                                  AttributeNames=["All"]).get("Messages", [])
        if not got:
            break
        messages += got
    assert len(messages) >= 5
    current = store.get(keys.MANIFEST_KEY)
    assert current is not None
    # When they are delivered reversed and duplicated, one batch at a time
    delivered = list(reversed(messages)) + messages[:3] + messages[-2:]
    sequences = []
    for i in range(0, len(delivered), 3):
        handler.lambda_handler(sqs_event(delivered[i:i + 3], aws["manifest_events_queue_arn"], "us-east-1"),
                               InvocationContext())
        sequences.append(release_now(store).sequence)
    # Then exactly one release was made, from the current manifest (version 5), and none after it
    assert sequences == [1] * len(sequences)
    release = release_now(store)
    assert release.manifest_etag == current.etag and release.projects["alpha"].version == "5"
    events = [json.loads(m["Body"]) for m in _drain(aws)]
    assert [ChangeEvent.model_validate(e).sequence for e in events] == [1]


def _drain(aws: dict[str, Any]) -> list[dict[str, Any]]:
    sqs = aws["settings"].client("sqs")
    out: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(QueueUrl=aws["host_queues"]["host-1"], MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            return out
        out += got
        for m in got:
            sqs.delete_message(QueueUrl=aws["host_queues"]["host-1"], ReceiptHandle=m["ReceiptHandle"])


class SlowManifestRead:
    """A store whose first manifest read waits until told to go on: a delayed Lambda invocation."""

    def __init__(self, store: S3Store) -> None:
        self.store, self.reached, self.go = store, threading.Event(), threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def get(self, key: str, *, if_none_match: str | None = None) -> Blob | None:
        if key == keys.MANIFEST_KEY and not self.reached.is_set():
            self.reached.set()
            assert self.go.wait(30)
        return self.store.get(key, if_none_match=if_none_match)


@pytest.mark.parametrize("newer_manifest", [True, False], ids=["newer-manifest-meanwhile", "same-manifest"])
def test_a_delayed_validator_run_never_releases_over_a_newer_release(
    store: S3Store, tmp_path: Path, newer_manifest: bool
) -> None:
    # Given release 1 and a manifest change, and a validator run that stalls between its two reads
    for v in (1, 2, 3):
        publish(store, "alpha", str(v), write_version(tmp_path / "src", "alpha", v), published_by="t")
    promote(store, "alpha", "1")
    assert Validator(store, **signing.KEYS, on_release=lambda _: None, record_history=False).run().status == "accepted"
    promote(store, "alpha", "2")
    slow = SlowManifestRead(store)
    outcomes: list[Any] = []
    late = threading.Thread(target=lambda: outcomes.append(
        Validator(slow, **signing.KEYS, on_release=lambda _: None, record_history=False).run()))  # type: ignore[arg-type]
    late.start()
    assert slow.reached.wait(30)
    # When another run releases meanwhile (and, in one case, the manifest moves on again)
    assert Validator(store, **signing.KEYS, on_release=lambda _: None, record_history=False).run().status == "accepted"
    if newer_manifest:
        promote(store, "alpha", "3")
    slow.go.set()
    late.join(30)
    # Then the late run starts over on what is current: the sequence only grows, the newest manifest wins
    release = release_now(store)
    current = store.get(keys.MANIFEST_KEY)
    assert current is not None and release.manifest_etag == current.etag
    assert release.sequence == (3 if newer_manifest else 2)
    assert release.projects["alpha"].version == ("3" if newer_manifest else "2")
    assert outcomes and outcomes[0].status == ("accepted" if newer_manifest else "noop")
