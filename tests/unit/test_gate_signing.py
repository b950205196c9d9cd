"""The validator signs what it releases and builds only on what it signed: a hand-written release.json is never
built on (a new chain starts, above every sequence in the history), an older signed root put back is skipped over
(the next release follows the newest in the history), and a signer that fails writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from dagsync.core import keys, releases
from dagsync.core.documents import read_release
from dagsync.core.models import Signature
from dagsync.publish.publisher import publish
from tests.support import signing
from tests.support.forgery import SIGNATURE_FORMS, forge
from tests.support.gate import Recorder, baseline
from tests.support.projects import EXAMPLES
from tests.support.store import FakeStore


def release_2(store: FakeStore) -> None:
    """Releases 1 (sales, finance 1.0.0) and 2 (sales 2.0.0) by the validator."""
    baseline(store)
    publish(store, "sales", "2.0.0", EXAMPLES / "marketing", promote_now=True)
    assert Recorder(store).run().sequence == 2


def test_every_root_is_signed_by_the_validators_key_and_its_history_copy_is_the_same(store: FakeStore) -> None:
    release_2(store)
    for key in (keys.RELEASE_KEY, keys.release_key(1), keys.release_key(2)):
        stored = releases.parse_root(store.objects[key], signing.VERIFIER, key)[0]
        assert stored.signature is not None and stored.signature.key_id == signing.SIGNER.key_id
    assert store.objects[keys.RELEASE_KEY] == store.objects[keys.release_key(2)]


@pytest.mark.parametrize("form", SIGNATURE_FORMS)
def test_a_hand_written_release_is_not_built_on_a_new_chain_starts_above_the_history(
    form: str, store: FakeStore, tmp_path: Path
) -> None:
    # Given releases 1 and 2, then release.json written by hand (release 3 with a project that never passed)
    release_2(store)
    first = releases.read_root(store, signing.VERIFIER, sequence=1)
    forge(store, form, tmp_path / "forged")
    # When the validator runs (the schedule)
    outcome = Recorder(store).run(recheck_rejected=True)
    # Then it releases the current manifest, signed, in a new chain whose sequence is above every one recorded
    stored = releases.read_root(store, signing.VERIFIER)
    assert outcome.status == "accepted" and stored is not None and first is not None
    assert stored.root.sequence == 3 and stored.root.chain != first.root.chain
    assert stored.root.chain.created_at > first.root.chain.created_at
    release, _ = read_release(store)
    assert release is not None and set(release.projects) == {"sales", "finance"}  # nothing of the forgery
    assert store.objects[keys.release_key(3)] == store.objects[keys.RELEASE_KEY]


def test_an_older_signed_root_put_back_is_skipped_over(store: FakeStore, tmp_path: Path) -> None:
    # Given releases 1 and 2, and release 1's signed bytes put back at release.json
    release_2(store)
    second = store.objects[keys.release_key(2)]
    forge(store, "older signed release replayed", tmp_path / "forged")
    # When the validator runs
    outcome = Recorder(store).run(recheck_rejected=True)
    # Then release 3 follows release 2 (same chain, sales 2.0.0 carried on), and the history was not rewritten
    assert outcome.status == "accepted" and outcome.sequence == 3
    third = releases.read_root(store, signing.VERIFIER)
    two = releases.parse_root(second, signing.VERIFIER)[0]
    assert third is not None and third.root.chain == two.chain
    release, _ = read_release(store)
    assert release is not None and release.projects["sales"].version == "2.0.0"
    assert store.objects[keys.release_key(2)] == second


class Unreachable:
    """A signer whose KMS does not answer."""

    key_id = "k"

    def sign(self, payload: bytes) -> Signature:
        raise ConnectionError("KMS unreachable")


def test_a_failed_signature_writes_nothing(store: FakeStore) -> None:
    # Given release 1 and a promoted change
    baseline(store)
    publish(store, "sales", "2.0.0", EXAMPLES / "marketing", promote_now=True)
    before = dict(store.objects)
    # When the validator cannot sign
    recorder = Recorder(store, signer=Unreachable())
    with pytest.raises(ConnectionError):
        recorder.run()
    # Then nothing was written (no shard, no root, no history, no rejection) and nobody was told of a release
    assert store.objects == before and recorder.events == []
    # And the next run, with its signer back, releases the change
    assert Recorder(store).run().sequence == 2
