"""The event/timer loop and the queue poller, with fakes in place of S3 and SQS."""

from __future__ import annotations

import ctypes
import gc
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil
import pytest

from dagsync.agent.config import load_config
from dagsync.agent.health import Health
from dagsync.agent.inbox import Inbox
from dagsync.agent.loop import Agent, QueuePoller, backoff, freeze_long_lived, give_back_heap
from dagsync.agent.metrics import Metrics
from dagsync.agent.sync import SyncResult
from dagsync.core.models import ChangeEvent

WAIT = 30.0  # generous: these are wait-for-condition timeouts, never performance asserts


class FakeSyncer:
    def __init__(self, outcomes: list[str] | None = None, serving: bool = False) -> None:
        self.serving = serving
        self.calls: list[bool] = []
        self.events: list[list[ChangeEvent]] = []
        self.outcomes = outcomes or []
        self.failures = 0
        self.on_call: Any = None
        self.called = threading.Event()

    def sync(self, *, full: bool, events: Sequence[ChangeEvent] = ()) -> SyncResult:
        self.calls.append(full)
        self.events.append(list(events))
        outcome = self.outcomes[len(self.calls) - 1] if len(self.calls) <= len(self.outcomes) else "noop"
        self.failures = self.failures + 1 if outcome == "error" else 0
        if self.on_call:
            self.on_call(len(self.calls))
        self.called.set()
        return SyncResult(outcome, full, error="boom" if outcome == "error" else None)  # type: ignore[arg-type]


def make_agent(tmp_path: Path, syncer: FakeSyncer, **cfg: Any) -> Agent:
    config = load_config({"dags_dir": str(tmp_path), "bucket": "bkt", "trusted_keys": "release.pem", **cfg}, {})
    return Agent(config, syncer, Health(Metrics(), 300), threading.Event(), threading.Event())  # type: ignore[arg-type]


def run_in_thread(agent: Agent) -> tuple[threading.Thread, list[int]]:
    rc: list[int] = []
    thread = threading.Thread(target=lambda: rc.append(agent.run()), daemon=True)
    thread.start()
    return thread, rc


def test_timer_reconciles_without_any_event(tmp_path: Path) -> None:
    syncer = FakeSyncer()
    agent = make_agent(tmp_path, syncer, reconcile_interval=0.01)
    syncer.on_call = lambda n: agent.request_stop() if n == 3 else None
    thread, rc = run_in_thread(agent)
    thread.join(WAIT)
    assert rc == [0] and syncer.calls == [True, True, True]


def test_a_burst_of_messages_becomes_one_sync(tmp_path: Path) -> None:
    syncer = FakeSyncer()
    agent = make_agent(tmp_path, syncer, reconcile_interval=3600)
    gate = threading.Event()

    def on_call(n: int) -> None:
        if n == 1:
            for _ in range(5):  # five change messages arrive while the first sync runs
                agent.kick.set()
            gate.wait(WAIT)
        if n == 2:
            agent.request_stop()

    syncer.on_call = on_call
    thread, rc = run_in_thread(agent)
    gate.set()
    thread.join(WAIT)
    assert rc == [0] and syncer.calls == [True, False]  # one full start-up sync, then ONE event sync


def test_forced_sync_is_a_full_reconcile(tmp_path: Path) -> None:
    syncer = FakeSyncer()
    agent = make_agent(tmp_path, syncer, reconcile_interval=3600)
    syncer.on_call = lambda n: agent.request_sync() if n == 1 else agent.request_stop()
    thread, rc = run_in_thread(agent)
    thread.join(WAIT)
    assert rc == [0] and syncer.calls == [True, True]


def test_ready_only_after_the_first_full_sync_and_degraded_on_errors(tmp_path: Path) -> None:
    syncer = FakeSyncer(["error", "noop", "error"])
    agent = make_agent(tmp_path, syncer, reconcile_interval=0.01, backoff_max=0.01)
    seen: list[tuple[bool, str | None]] = []

    def on_call(n: int) -> None:
        seen.append((agent.health.ready, agent.health.degraded))
        if n == 4:
            agent.request_stop()

    syncer.on_call = on_call
    thread, _ = run_in_thread(agent)
    thread.join(WAIT)
    # before call 1: not ready; after the error: still not ready; after the noop: ready; after error: degraded
    assert seen == [(False, None), (False, "boom"), (True, None), (True, "boom")]


def test_the_long_lived_objects_are_frozen_once_after_the_first_full_reconcile_that_did_not_fail(
    tmp_path: Path,
) -> None:
    syncer = FakeSyncer(["error", "noop", "noop", "success"])
    agent = make_agent(tmp_path, syncer, reconcile_interval=0.01, backoff_max=0.01)
    settled: list[int] = []
    agent.settled = lambda: settled.append(len(syncer.calls))
    syncer.on_call = lambda n: agent.request_stop() if n == 4 else None
    thread, _ = run_in_thread(agent)
    thread.join(WAIT)
    assert syncer.calls == [True, True, True, True] and settled == [2]


def test_freezing_leaves_no_garbage_to_the_permanent_generation() -> None:
    class Cycle:
        def __init__(self) -> None:
            self.me = self

    gc.disable()  # no automatic collection between here and the freeze
    try:
        garbage = weakref.ref(Cycle())  # unreachable, alive until the collector runs
        assert garbage() is not None
        freeze_long_lived()
        assert garbage() is None and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.enable()


def test_the_heap_freed_objects_leave_behind_goes_back_to_the_system() -> None:
    # Given 64 MiB of objects big enough for the C heap (not Python's arenas), freed below one that stays
    if not hasattr(ctypes.CDLL(None), "malloc_trim"):
        pytest.skip("the C library has no malloc_trim")
    me = psutil.Process()
    held = [bytes(1024) + bytes([i % 256]) for i in range(64 * 1024)]
    pin = bytes(1024) + b"pin"  # above them on the heap: freeing them leaves a hole, not a shorter heap
    full = me.memory_info().rss
    del held
    # When the heap is given back (as freeze_long_lived does after the first full reconcile)
    give_back_heap()
    # Then most of those pages left the process
    assert me.memory_info().rss < full - 32 * 2**20 and pin


def test_restart_with_live_projects_on_disk_is_ready_but_degraded_while_syncs_fail(tmp_path: Path) -> None:
    syncer = FakeSyncer(["error", "error"], serving=True)
    agent = make_agent(tmp_path, syncer, reconcile_interval=0.01, backoff_max=0.01)
    seen: list[tuple[bool, str | None]] = []

    def on_call(n: int) -> None:
        seen.append((agent.health.ready, agent.health.degraded))
        if n == 2:
            agent.request_stop()

    syncer.on_call = on_call
    thread, _ = run_in_thread(agent)
    thread.join(WAIT)
    assert seen == [(False, None), (True, "boom")]


def test_max_failures_exits_non_zero(tmp_path: Path) -> None:
    syncer = FakeSyncer(["error"] * 10)
    agent = make_agent(tmp_path, syncer, reconcile_interval=0.01, backoff_max=0.01, max_failures=3)
    thread, rc = run_in_thread(agent)
    thread.join(WAIT)
    assert rc == [1] and len(syncer.calls) == 3


def test_stop_while_waiting_exits_zero(tmp_path: Path) -> None:
    syncer = FakeSyncer()
    agent = make_agent(tmp_path, syncer, reconcile_interval=3600)
    thread, rc = run_in_thread(agent)
    assert syncer.called.wait(WAIT)
    agent.request_stop()
    thread.join(WAIT)
    assert rc == [0] and syncer.calls == [True]


@pytest.mark.parametrize("failures", [1, 2, 5, 50])
def test_backoff_grows_with_jitter_and_is_capped(failures: int) -> None:
    cap = 8.0
    delay = min(cap, 2 ** (failures - 1))
    for _ in range(50):
        assert delay / 2 <= backoff(failures, cap) <= delay


class FakeSqs:
    def __init__(self, batches: list[Any]) -> None:
        self.batches = batches
        self.deleted: list[str] = []

    def receive_message(self, **kwargs: Any) -> dict[str, Any]:
        item = self.batches.pop(0) if self.batches else []
        if isinstance(item, Exception):
            raise item
        return {"Messages": [{"ReceiptHandle": f"rh-{m}", "Body": m if isinstance(m, str) else "{}"} for m in item]}

    def delete_message_batch(self, **kwargs: Any) -> None:
        self.deleted.extend(e["ReceiptHandle"] for e in kwargs["Entries"])


def test_poller_deletes_messages_and_kicks_once_per_batch() -> None:
    sqs = FakeSqs([[1, 2, 3]])
    kick, stop, metrics = threading.Event(), threading.Event(), Metrics()
    poller = QueuePoller(sqs, "http://127.0.0.1/q", 0, kick, stop, metrics, 1.0)
    assert poller.poll_once() == 3
    assert kick.is_set() and sqs.deleted == ["rh-1", "rh-2", "rh-3"]
    assert metrics.registry.get_sample_value("dagsync_agent_queue_messages_total") == 3


def test_poller_survives_sqs_errors() -> None:
    kick, stop, metrics = threading.Event(), threading.Event(), Metrics()
    sqs = FakeSqs([ConnectionError("sqs down"), ConnectionError("sqs down"), [7]])
    poller = QueuePoller(sqs, "http://127.0.0.1/q", 0, kick, stop, metrics, 0.01)
    poller.start()
    assert kick.wait(WAIT)
    stop.set()
    poller.join(WAIT)
    assert metrics.registry.get_sample_value("dagsync_agent_queue_errors_total") == 2 and sqs.deleted == ["rh-7"]


def event(sequence: int) -> ChangeEvent:
    return ChangeEvent(release_etag=f'"{sequence}"', root={"sequence": sequence, "changes": {}})


def test_poller_hands_change_events_to_the_next_sync_oldest_first(tmp_path: Path) -> None:
    bodies = [event(3).model_dump_json(), "not an event", event(2).model_dump_json()]
    sqs, inbox, kick, stop = FakeSqs([bodies]), Inbox(), threading.Event(), threading.Event()
    QueuePoller(sqs, "http://127.0.0.1/q", 0, kick, stop, Metrics(), 1.0, inbox).poll_once()
    assert kick.is_set() and len(sqs.deleted) == 3  # the message that is no event is still a kick
    syncer = FakeSyncer()
    agent = Agent(load_config({"dags_dir": str(tmp_path), "bucket": "bkt", "trusted_keys": "release.pem"}, {}),
                  syncer, Health(Metrics(), 300), threading.Event(), threading.Event(), inbox)  # type: ignore[arg-type]
    syncer.on_call = lambda n: agent.request_stop()
    agent.run()
    assert [[e.sequence for e in batch] for batch in syncer.events] == [[2, 3]]
    assert inbox.take() == []


def test_inbox_keeps_only_the_newest_events() -> None:
    inbox = Inbox(keep=2)
    for sequence in (5, 1, 4, 2):
        inbox.offer(event(sequence))
    assert [e.sequence for e in inbox.take()] == [4, 5]
