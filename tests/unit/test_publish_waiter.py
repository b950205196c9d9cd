"""`--wait`'s judgement of a manifest write (dagsync.publish.waiter), against the fake store: released,
superseded, rejected, rejected after a later write, or not yet. Each case is decided on the first look
(timeout=0), so no clock is involved."""

from __future__ import annotations

from pathlib import Path

import pytest

from dagsync.publish.change import ManifestChange
from dagsync.publish.publisher import promote, publish
from dagsync.publish.waiter import Rejected, Superseded, WaitTimeout, wait_for_release
from tests.support.gate import Recorder, baseline
from tests.support.projects import EXAMPLES, dag
from tests.support.store import FakeStore


@pytest.fixture
def live(store: FakeStore) -> FakeStore:
    """Release 1 (sales 1.0.0, finance 1.0.0); sales 2.0.0 and 3.0.0 published, not live."""
    baseline(store)
    publish(store, "sales", "2.0.0", EXAMPLES / "marketing")
    publish(store, "sales", "3.0.0", EXAMPLES / "sales")
    return store


def clash(store: FakeStore, tmp_path: Path) -> ManifestChange:
    """Promote a project declaring a dag_id that finance owns: the validator must reject it."""
    folder = tmp_path / "copycat"
    folder.mkdir()
    (folder / "dup.py").write_bytes(dag("finance_month_end_close"))
    change = publish(store, "copycat", "1.0.0", folder, promote_now=True).manifest
    assert change is not None
    return change


def test_released_when_the_release_includes_the_change(live: FakeStore) -> None:
    # Given sales 2.0.0 promoted, and released by the validator
    change = promote(live, "sales", "2.0.0")
    assert Recorder(live).run().status == "accepted"
    # When the publisher waits / Then it gets release 2, with its version live
    release = wait_for_release(live, change, timeout=0)
    assert release.sequence == 2 and release.projects["sales"].version == "2.0.0"
    # And a promote that changed nothing is answered by the release already there
    again = promote(live, "sales", "2.0.0")
    assert not again.changed and wait_for_release(live, again, timeout=0).sequence == 2


def test_released_by_a_later_manifest_that_still_includes_the_change(live: FakeStore) -> None:
    # Given sales 2.0.0 promoted, then finance 1.1.0 promoted by someone else, and only that later manifest released
    change = promote(live, "sales", "2.0.0")
    publish(live, "finance", "1.1.0", EXAMPLES / "finance", promote_now=True)
    assert Recorder(live).run().sequence == 2
    # When the first publisher waits / Then the later release answers for it: its version is live
    release = wait_for_release(live, change, timeout=0)
    assert release.sequence == 2 and release.projects["sales"].version == "2.0.0"


def test_superseded_when_a_later_write_replaced_the_change(live: FakeStore) -> None:
    # Given sales 2.0.0 promoted, then 3.0.0 promoted by someone else before the validator ran
    change = promote(live, "sales", "2.0.0")
    promote(live, "sales", "3.0.0")
    assert Recorder(live).run().sequence == 2
    # When the first publisher waits / Then it is told it did not win, and what is live instead
    with pytest.raises(Superseded) as superseded:
        wait_for_release(live, change, timeout=0)
    assert superseded.value.live_version == "3.0.0" and superseded.value.release.sequence == 2
    assert "sales 2.0.0 is not live: a later manifest write made it 3.0.0 (release 2)" in str(superseded.value)


def test_rejected_with_the_validators_reason(live: FakeStore, tmp_path: Path) -> None:
    # Given a promote the validator rejects
    change = clash(live, tmp_path)
    assert Recorder(live).run().status == "rejected"
    # When the publisher waits / Then it gets the rejection of its own manifest, with the reason
    with pytest.raises(Rejected) as rejected:
        wait_for_release(live, change, timeout=0)
    assert not rejected.value.superseded and rejected.value.rejection.manifest_etag == change.etag
    reason = "dag_id 'finance_month_end_close' is declared by more than one live project: copycat, finance"
    assert reason in str(rejected.value)


def test_rejected_superseded_when_a_later_write_including_the_change_was_rejected(live: FakeStore,
                                                                                  tmp_path: Path) -> None:
    # Given sales 2.0.0 promoted, then a bad promote by someone else, and the validator rejecting that manifest
    change = promote(live, "sales", "2.0.0")
    later = clash(live, tmp_path)
    assert Recorder(live).run().status == "rejected"
    # When the first publisher waits / Then it is told the manifest that carries its change was rejected
    with pytest.raises(Rejected) as rejected:
        wait_for_release(live, change, timeout=0)
    assert rejected.value.superseded and rejected.value.rejection.manifest_etag == later.etag != change.etag
    assert "a later manifest write, which includes this change, was rejected" in str(rejected.value)


def test_not_yet_is_a_timeout(live: FakeStore) -> None:
    # Given sales 2.0.0 promoted and no validator run since
    change = promote(live, "sales", "2.0.0")
    # When the publisher waits no longer / Then it times out, saying what it waited for
    with pytest.raises(WaitTimeout, match="no release included the change within 0s"):
        wait_for_release(live, change, timeout=0)
