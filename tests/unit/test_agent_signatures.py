"""The agent applies only what the validator signed, and follows the release chain of the bucket it syncs from.

A hand-written release.json in any form (tests/support/forgery.py) never changes a host: it is refused, the refusal
is counted by reason and logged, hosts/<host>.json and /readyz say why, and the live DAGs stay. A host whose volume
holds another chain (a redeployed environment, a restored volume, a host pointed at another environment) starts
over from the bucket's chain instead of waiting forever."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dagsync.agent.metrics import Metrics
from dagsync.agent.sync import Settings, Syncer
from dagsync.agent.volume import Volume
from dagsync.core import keys, serde
from dagsync.core.models import Chain, HostStatus
from tests.support import signing
from tests.support.forgery import EVIL, FORMS, SIGNATURE_FORMS, forge
from tests.support.projects import TEST_CHAIN
from tests.support.store import FakeStore

A1 = {"alpha": ("1.0", {"dag_a.py": "a = 1\n"})}
A2 = {"alpha": ("2.0", {"dag_a.py": "a = 2\n"})}


def live(dags: Path) -> dict[str, str]:
    return {p.name: os.readlink(p) for p in sorted(dags.iterdir()) if p.is_symlink()}


def counted(syncer: Syncer, metric: str, reason: str) -> float:
    return syncer.metrics.registry.get_sample_value(f"dagsync_agent_{metric}_total", {"reason": reason}) or 0.0


def logged(caplog: pytest.LogCaptureFixture, message: str) -> list[dict[str, object]]:
    return [getattr(r, "kv", {}) for r in caplog.records if r.getMessage() == message]


@pytest.mark.parametrize("form", list(FORMS))
def test_a_hand_written_release_never_changes_a_host_that_holds_a_release(
    form: str, publish: Callable, make_syncer: Callable[..., Syncer], store: FakeStore, dags: Path, tmp_path: Path,
    caplog: pytest.LogCaptureFixture
) -> None:
    # Given a host that applied release 2 (the history holds 1 and 2)
    publish(A1, sequence=1)
    publish(A2, sequence=2)
    syncer = make_syncer()
    assert syncer.sync(full=True).outcome == "success"
    before = live(dags)
    # When release.json is written by hand in this form
    caplog.set_level(logging.INFO, logger="dagsync.agent")
    reason = forge(store, form, tmp_path / "forged")
    result = syncer.sync(full=True)
    # Then the host keeps its live DAGs, and counts and logs the refusal with its reason
    assert live(dags) == before and not (dags / EVIL).exists()
    assert not (dags / ".dagsync" / "store" / EVIL).exists()
    assert counted(syncer, "releases_refused", reason) == 1
    assert [kv["reason"] for kv in logged(caplog, "release refused")] == [reason]
    status = serde.load_json(HostStatus, store.objects[keys.host_status_key("host-a")], "status")
    if form in SIGNATURE_FORMS:
        # And says it was refused for its signature: in the sync error, the log and hosts/<host>.json
        assert result.outcome == "error" and "refused" in (result.error or "") and "signature" in (result.error or "")
        assert "signature" in str(logged(caplog, "release refused")[0]["error"])
        assert status.last_error == result.error and status.sequence == 2
    else:
        # An older release than the one applied is ignored: not an error, nothing to repair on this host
        assert result.outcome == "noop" and status.last_error is None


@pytest.mark.parametrize("form", list(FORMS))
def test_a_hand_written_release_never_reaches_a_fresh_volume(
    form: str, publish: Callable, make_syncer: Callable[..., Syncer], store: FakeStore, dags: Path, tmp_path: Path
) -> None:
    # Given releases 1 and 2 by the validator, and a host with an empty volume (a new host, an init container)
    publish(A1, sequence=1)
    publish(A2, sequence=2)
    # When release.json is written by hand in this form before the host's first sync
    reason = forge(store, form, tmp_path / "forged")
    syncer = make_syncer(write_status=False)
    result = syncer.sync(full=True)
    # Then nothing is applied, not even the correctly signed older release: the history holds a newer one
    assert result.outcome == "error" and "refused" in (result.error or ""), result
    assert live(dags) == {} and counted(syncer, "releases_refused", reason) == 1
    # And once the validator writes the newest release again, the host takes it
    publish(A2 | {"beta": ("1", {"b.py": "b\n"})}, sequence=3)
    assert syncer.sync(full=True).outcome == "success" and set(live(dags)) == {"alpha", "beta"}


def test_unsigned_releases_are_applied_only_where_that_was_chosen(
    publish: Callable, store: FakeStore, dags: Path
) -> None:
    # Given an unsigned release
    from dagsync.core.signatures import verifier_from
    from tests.support.projects import write_release

    write_release(store, dags.parent / "src", 1, A1, signer=None)
    # Then a host with trusted keys refuses it, and one configured to accept unsigned releases applies it
    strict = Syncer(store, Volume(dags), Settings(host="h"), Metrics(), threading.Event(), signing.VERIFIER)
    assert strict.sync(full=True).outcome == "error" and live(dags) == {}
    lax = Syncer(store, Volume(dags), Settings(host="h"), Metrics(), threading.Event(),
                 verifier_from(None, allow_unsigned=True))
    assert lax.sync(full=True).outcome == "success" and set(live(dags)) == {"alpha"}


def chain(day: int) -> Chain:
    return Chain(id=f"{day:02d}" * 16, created_at=datetime(2026, 1, day, tzinfo=UTC))


def host_on(store: FakeStore, dags: Path, bucket: str) -> Syncer:
    return Syncer(store, Volume(dags), Settings(host="host-a", bucket=bucket, write_status=False), Metrics(),
                  threading.Event(), signing.VERIFIER)


def synced_to_release_9(publish_to: Callable[..., object], dags: Path, store: FakeStore) -> Syncer:
    """A host that applied release 9 of chain 2 (January 2nd) from bucket env-a."""
    publish_to(store, A1, 9, chain(2))
    syncer = host_on(store, dags, "env-a")
    assert syncer.sync(full=True).outcome == "success" and syncer.state.sequence == 9
    return syncer


@pytest.fixture
def publish_to(tmp_path: Path) -> Callable[..., object]:
    from tests.support.projects import write_release

    def _publish(store: FakeStore, projects: dict, sequence: int, made: Chain) -> object:
        return write_release(store, tmp_path / "src", sequence, projects, chain=made)

    return _publish


@pytest.mark.parametrize("case", ["redeployed environment", "restored volume"])
def test_a_host_meeting_a_newer_chain_in_its_bucket_starts_over_from_it(
    case: str, publish_to: Callable[..., object], dags: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a host at release 9 of its chain
    store = FakeStore()
    syncer = synced_to_release_9(publish_to, dags, store)
    if case == "restored volume":  # the agent restarts on a volume restored from before the redeploy
        syncer = host_on(store, dags, "env-a")
    # When the environment is redeployed: a new chain, made later, starting again at release 1
    caplog.set_level(logging.INFO, logger="dagsync.agent")
    publish_to(store, A2, 1, chain(5))
    result = syncer.sync(full=True)
    # Then the host starts over from it and converges, and says so
    assert result.outcome == "success" and syncer.state.sequence == 1 and syncer.state.chain == chain(5)
    assert (dags / "alpha" / "dag_a.py").read_text() == "a = 2\n"
    assert counted(syncer, "chain_changes", "newer_chain") == 1
    assert logged(caplog, "new release chain: starting over from it")[0]["reason"] == "newer_chain"


def test_a_host_pointed_at_another_environment_converges_even_to_an_older_chain(
    publish_to: Callable[..., object], dags: Path
) -> None:
    # Given a host at release 9 of env-a's chain (January 2nd)
    env_a, env_b = FakeStore(), FakeStore()
    synced_to_release_9(publish_to, dags, env_a)
    # When it is pointed at env-b, whose chain is older (January 1st) and whose sequence is lower
    publish_to(env_b, A2, 3, chain(1))
    moved = host_on(env_b, dags, "env-b")
    result = moved.sync(full=True)
    # Then it takes env-b's release, and counts the move
    assert result.outcome == "success" and moved.state.sequence == 3 and moved.state.bucket == "env-b"
    assert (dags / "alpha" / "dag_a.py").read_text() == "a = 2\n"
    assert counted(moved, "chain_changes", "other_bucket") == 1


def test_an_older_chain_in_the_same_bucket_is_refused(publish_to: Callable[..., object], dags: Path) -> None:
    # Given a host at release 9 of its bucket's chain
    store = FakeStore()
    syncer = synced_to_release_9(publish_to, dags, store)
    # When release.json is replaced by a (signed) release of a chain made before it
    publish_to(store, A2, 40, chain(1))
    result = syncer.sync(full=True)
    # Then it is not applied, and the refusal is counted
    assert result.outcome == "noop" and (dags / "alpha" / "dag_a.py").read_text() == "a = 1\n"
    assert syncer.state.chain == chain(2) and counted(syncer, "releases_refused", "older_chain") == 1


def test_a_state_recorded_before_buckets_were_keeps_its_chain(publish: Callable, make_syncer: Callable[..., Syncer],
                                                            dags: Path) -> None:
    # Given a host whose state.json names its chain but not the bucket it came from (written by an older agent)
    publish(A1, sequence=4)
    first = make_syncer(bucket="env-a")
    first.sync(full=True)
    first.state.bucket = None
    # When it syncs again / Then it stays on its chain, and records the bucket
    publish(A2, sequence=5)
    assert first.sync(full=True).outcome == "success" and first.state.sequence == 5
    assert first.state.chain == TEST_CHAIN and first.state.bucket == "env-a"


def test_a_refused_older_release_is_refused_on_every_cycle_not_only_the_first(
    publish: Callable, make_syncer: Callable[..., Syncer], store: FakeStore, dags: Path, tmp_path: Path
) -> None:
    # Given a fresh host, and release 1 put back at release.json while the history holds release 2
    publish(A1, sequence=1)
    publish(A2, sequence=2)
    forge(store, "older signed release replayed", tmp_path / "forged")
    syncer = make_syncer(write_status=False)
    assert syncer.sync(full=True).outcome == "error"
    # When change events arrive (conditional reads) and the timer reconciles
    outcomes = [syncer.sync(full=full).outcome for full in (False, False, True)]
    # Then each cycle refuses it again: none reports the host healthy on it, and nothing is linked
    assert outcomes == ["error", "error", "error"] and live(dags) == {}
