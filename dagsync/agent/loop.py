"""The daemon: an SQS poller thread marks the state dirty; the main loop syncs on a kick or on the timer.

Messages are a kick ("something changed") carrying a change event: a burst becomes one sync, which applies the
events' deltas when they lead on from the release held (dagsync.core.delta) and reads release.json otherwise. The
full reconcile every `reconcile_interval` seconds runs with or without them, so a lost message or an unreachable
queue costs at most one interval. Waiting is always `Event.wait(timeout)`; signals only set events."""

from __future__ import annotations

import ctypes
import gc
import random
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from dagsync.core.aws import AwsSettings, only_operations
from dagsync.core.releases import Verifier
from dagsync.core.store import S3Store

from . import logs
from .config import AgentConfig
from .health import Health, HealthServer
from .inbox import Inbox, parse_event
from .metrics import Metrics
from .sync import Settings, Syncer
from .volume import Volume

EXIT_OK, EXIT_TOO_MANY_FAILURES = 0, 1
SIGNAL_LATENCY_S = 0.5


def backoff(failures: int, cap: float, base: float = 1.0) -> float:
    """Exponential back-off with jitter: uniform in [d/2, d], d = min(cap, base * 2^(failures-1))."""
    delay = min(cap, base * (2 ** max(0, min(failures - 1, 30))))
    return random.uniform(delay / 2, delay)


def make_syncer(cfg: AgentConfig, metrics: Metrics, stop: threading.Event, *, write_status: bool,
                verifier: Verifier) -> Syncer:
    client = AwsSettings.resolve(cfg.region, cfg.endpoint_url).client("s3")
    settings = Settings(
        host=cfg.host,
        bucket=cfg.bucket,
        keep_versions=cfg.keep_versions,
        keep_views=cfg.keep_views,
        retention_grace=cfg.retention_grace,
        digest_every=cfg.digest_every,
        write_status=write_status,
    )
    return Syncer(S3Store(client, cfg.bucket), Volume(cfg.dags_dir), settings, metrics, stop, verifier)


class QueuePoller(threading.Thread):
    """Long-polls the host queue; every batch of messages is deleted and becomes one kick."""

    OPERATIONS = ("ReceiveMessage", "DeleteMessageBatch")  # every SQS call it makes

    def __init__(self, client: Any, queue_url: str, wait: int, kick: threading.Event,
                 stop: threading.Event, metrics: Metrics, backoff_max: float, inbox: Inbox | None = None) -> None:
        super().__init__(name="sqs-poller", daemon=True)
        self.client, self.queue_url, self.wait = client, queue_url, wait
        self.kick, self.stop, self.metrics, self.backoff_max = kick, stop, metrics, backoff_max
        self.inbox = inbox

    def run(self) -> None:
        failures = 0
        while not self.stop.is_set():
            try:
                self.poll_once()
                failures = 0
            except Exception as exc:  # SQS down: the timer still syncs; retry after a back-off
                failures += 1
                self.metrics.queue_errors.inc()
                logs.warning("queue receive failed", error=f"{type(exc).__name__}: {exc}", failures=failures)
                self.stop.wait(backoff(failures, self.backoff_max))

    def poll_once(self) -> int:
        resp = self.client.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=self.wait
        )
        messages = resp.get("Messages", [])
        if not messages:
            if self.wait == 0:
                self.stop.wait(1.0)
            return 0
        self.client.delete_message_batch(
            QueueUrl=self.queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )
        self.metrics.queue_messages.inc(len(messages))
        logs.debug("change messages received", count=len(messages))
        for event in (parse_event(m.get("Body", "")) for m in messages):
            if event is not None and self.inbox is not None:
                self.inbox.offer(event)
        self.kick.set()
        return len(messages)


class Agent:
    def __init__(self, cfg: AgentConfig, syncer: Syncer, health: Health, stop: threading.Event,
                 kick: threading.Event, inbox: Inbox | None = None,
                 settled: Callable[[], None] | None = None) -> None:
        self.cfg, self.syncer, self.health, self.stop, self.kick = cfg, syncer, health, stop, kick
        self.inbox = inbox or Inbox()
        self.force = False
        self.settled = settled  # called once, after the first full reconcile that did not fail

    def request_sync(self) -> None:
        self.force = True
        self.kick.set()

    def request_stop(self) -> None:
        self.stop.set()
        self.kick.set()

    def run(self) -> int:
        next_full = 0.0
        while not self.stop.is_set():
            self.health.beat()
            full = self.force or time.monotonic() >= next_full
            self.force = False
            self.kick.clear()  # a message arriving during this sync kicks the next one
            result = self.syncer.sync(full=full, events=self.inbox.take())
            self.health.beat()
            if result.outcome == "error":
                self.health.degraded = result.error
                if self.syncer.serving:
                    # Restarted while S3 is unreachable: the last good state on disk (checked by the start-up
                    # recovery) is what Airflow should run, so serve it as ready, degraded.
                    self.health.ready = True
                failures = self.syncer.failures
                if self.cfg.max_failures and failures >= self.cfg.max_failures:
                    logs.error("giving up: too many consecutive failures", failures=failures)
                    return EXIT_TOO_MANY_FAILURES
                next_full = time.monotonic() + backoff(failures, self.cfg.backoff_max)
            else:
                self.health.degraded = None
                if full:
                    self.health.ready = True
                    next_full = time.monotonic() + self.cfg.reconcile_interval
                    if self.settled is not None:
                        self.settled()
                        self.settled = None
                    else:  # the pages a full reconcile's passing objects left (docs/agent.md, "Memory")
                        give_back_heap()
            self._wait_until(next_full)
        logs.info("stopping on request")
        return EXIT_OK

    def _wait_until(self, deadline: float) -> None:
        """Wait for a kick, a stop or the deadline, waking at least every SIGNAL_LATENCY_S: a signal that the
        kernel hands to another thread only runs its Python handler once the main thread runs bytecode again,
        so an unbounded wait could sit on a SIGTERM or SIGHUP until the next reconcile."""
        while not (self.stop.is_set() or self.kick.is_set()):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self.kick.wait(min(SIGNAL_LATENCY_S, remaining))


def freeze_long_lived() -> None:
    """Once, after the first full reconcile: what lives as long as the process (modules, botocore's service models,
    the release as first applied) leaves the garbage collector's walks. A full collection walked it all, about 70 ms
    at 10,000 projects every other change (bench/agent_probe.py's gc_seconds; docs/agent.md, "Memory").
    Collected first, so no garbage is frozen; frozen objects are still freed when their last reference goes. Then the
    heap pages the cold sync's passing objects left are given back: idle RSS at 10,000 projects 114.7 -> 103.9 MiB."""
    gc.collect()
    gc.freeze()
    give_back_heap()


def give_back_heap() -> None:
    """Return to the system the heap pages that freed objects left behind (glibc's malloc_trim; nothing where the C
    library has none)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)


def run_agent(cfg: AgentConfig, verifier: Verifier) -> int:
    # The daemon's memory counts on every host: botocore's models keep only the calls it makes (docs/agent.md).
    only_operations("s3", S3Store.OPERATIONS)
    only_operations("sqs", QueuePoller.OPERATIONS)
    metrics, stop, kick = Metrics(), threading.Event(), threading.Event()
    syncer = make_syncer(cfg, metrics, stop, write_status=True, verifier=verifier)
    health = Health(metrics, liveness_window=max(300.0, 3 * cfg.reconcile_interval + cfg.backoff_max))
    inbox = Inbox()
    agent = Agent(cfg, syncer, health, stop, kick, inbox, settled=freeze_long_lived)
    signal.signal(signal.SIGTERM, lambda *_: agent.request_stop())
    signal.signal(signal.SIGINT, lambda *_: agent.request_stop())
    signal.signal(signal.SIGHUP, lambda *_: agent.request_sync())
    server = HealthServer(cfg.listen_address, health, agent.request_sync).start() if cfg.listen_address else None
    if cfg.queue_url:
        aws = AwsSettings.resolve(cfg.region, cfg.endpoint_url)
        sqs = aws.client("sqs", read_timeout=cfg.poll_wait + 10)
        QueuePoller(sqs, cfg.queue_url, cfg.poll_wait, kick, stop, metrics, cfg.backoff_max, inbox).start()
    else:
        logs.warning("no queue configured: syncing on the timer only", interval=cfg.reconcile_interval)
    try:
        return agent.run()
    finally:
        stop.set()
        if server:
            server.stop()
