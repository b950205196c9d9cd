"""Outages: the whole AWS side (a moto server this process stops and restarts on the same port) and the host
queue alone. Live DAGs stay intact, health says degraded, and the agent recovers by itself."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dagsync.core import constants
from dagsync.core.store import S3Store
from dagsync.local.procs import Process, _bin, _env, wait_for
from dagsync.local.watch import Watcher
from tests.e2e.reliability import ControlledMoto, Published, figures_line, free_port, http
from tests.support.projects import write_version

pytestmark = pytest.mark.e2e
WAIT = 60.0
HOST = "host-1"
OUTAGE_SECONDS = (3.0, 8.0)  # two whole-service outages: a short one and one past several back-offs


@dataclass
class Setup:
    moto: ControlledMoto
    store: S3Store
    agent: Process
    port: int
    dags: Path
    published: Published
    src: Path


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    moto = ControlledMoto(hosts=(HOST,))
    moto.start()
    try:
        info = moto.provision(schedule_interval=2.0)
        store = moto.store()
        published = Published()
        src = tmp_path / "src"
        for project in ("alpha", "beta"):
            published.add(store, project, "1", write_version(src, project, 1), promote_now=True)
        port, dags = free_port(), tmp_path / "dags"
        cmd = [*_bin("dagsync-agent"), "run", "--dags-dir", str(dags), "--bucket", moto.bucket,
               "--endpoint-url", moto.endpoint, "--host", HOST, "--queue-url", info["host_queues"][HOST],
               "--trusted-keys", str(moto.trusted_keys_file(tmp_path / "keys")),
               "--listen", f"127.0.0.1:{port}", "--reconcile-interval", "1", "--poll-wait", "1",
               "--backoff-max", "2"]
        log = (tmp_path / "agent.log").open("w")
        popen = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True, env=_env())
        agent = Process(name="agent", popen=popen, log_path=tmp_path / "agent.log")
        try:
            assert wait_for(lambda: http(port, "/readyz") == (200, "ok\n"), timeout=WAIT), agent_log(agent)
            yield Setup(moto, store, agent, port, dags, published, src)
        finally:
            assert agent.stop() == 0
            log.close()
    finally:
        moto.close()


def agent_log(agent: Process) -> str:
    return agent.log_path.read_text()[-4000:] if agent.log_path else ""


def lands(setup: Setup, project: str, version: str) -> bool:
    sha = setup.published.shas[(project, version)]
    link = setup.dags / project
    return link.is_symlink() and str(link.readlink()).endswith(sha[:12])


def test_s3_and_sqs_down_keep_live_dags_say_degraded_and_recover_by_themselves(setup: Setup) -> None:
    # Given two live projects and a reader scanning the folder the whole time
    assert wait_for(lambda: lands(setup, "alpha", "1") and lands(setup, "beta", "1"), timeout=WAIT)
    watcher = Watcher(setup.dags, setup.published.digests, {"alpha", "beta"}, interval=0.002)
    watcher.start()
    survived = 0
    for n, seconds in enumerate(OUTAGE_SECONDS, start=2):
        # When the whole service goes away (S3, SQS and SNS: the server stops)
        setup.moto.stop()
        # Then the agent says degraded, still serves health, and the folder keeps the live DAGs
        assert wait_for(lambda: http(setup.port, "/readyz")[1].startswith("degraded:"), timeout=WAIT), \
            agent_log(setup.agent)
        assert http(setup.port, "/healthz")[0] == 200
        threading.Event().wait(seconds)
        assert setup.agent.alive
        # When it comes back on the same address, with its data
        setup.moto.start()
        # Then the agent is ok again by itself (no restart, no signal) ...
        assert wait_for(lambda: http(setup.port, "/readyz") == (200, "ok\n"), timeout=WAIT), agent_log(setup.agent)
        # ... and the next deploy lands through the event path
        setup.published.add(setup.store, "alpha", str(n), write_version(setup.src, "alpha", n), promote_now=True)
        assert wait_for(lambda v=str(n): lands(setup, "alpha", v), timeout=WAIT), agent_log(setup.agent)
        survived += 1
    problems = watcher.finish()
    print(figures_line("outage_s3_sqs", outages=survived, seconds=list(OUTAGE_SECONDS), reader_scans=watcher.scans,
                       torn_or_missing_reads=len(problems)))
    assert problems == []
    assert lands(setup, "beta", "1")


def test_queue_down_alone_the_timer_keeps_syncing_and_the_poller_recovers(setup: Setup) -> None:
    # Given a live project and the host's queue
    sqs = setup.moto.settings.client("sqs")
    sns = setup.moto.settings.client("sns")
    queue_url = setup.moto.info["host_queues"][HOST]
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["RedrivePolicy"])["Attributes"]
    # When the queue alone goes away (S3 still answers)
    sqs.delete_queue(QueueUrl=queue_url)
    assert wait_for(lambda: "dagsync_agent_queue_errors_total 0.0" not in metrics(setup), timeout=WAIT)
    # Then a deploy still lands, by the one-second reconcile timer
    setup.published.add(setup.store, "beta", "2", write_version(setup.src, "beta", 2), promote_now=True)
    assert wait_for(lambda: lands(setup, "beta", "2"), timeout=WAIT), agent_log(setup.agent)
    assert lands(setup, "alpha", "1")
    # When the queue is back (same name, same URL) and subscribed again
    url = sqs.create_queue(QueueName=constants.host_queue_name("dagsync", HOST), Attributes=attributes)["QueueUrl"]
    assert url == queue_url
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=setup.moto.info["topic_arn"], Protocol="sqs", Endpoint=arn,
                  Attributes={"RawMessageDelivery": "true"})
    received = queue_messages(setup)
    setup.published.add(setup.store, "beta", "3", write_version(setup.src, "beta", 3), promote_now=True)
    # Then the poller picks change events up again by itself
    assert wait_for(lambda: queue_messages(setup) > received, timeout=WAIT), agent_log(setup.agent)
    assert wait_for(lambda: lands(setup, "beta", "3"), timeout=WAIT)
    print(figures_line("outage_queue", outages=1))


def metrics(setup: Setup) -> str:
    return http(setup.port, "/metrics")[1]


def queue_messages(setup: Setup) -> float:
    for line in metrics(setup).splitlines():
        if line.startswith("dagsync_agent_queue_messages_total "):
            return float(line.split()[1])
    return 0.0
