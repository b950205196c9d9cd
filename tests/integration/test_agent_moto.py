"""The agent against moto in-process: once mode, the event path through SNS -> SQS, host status."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dagsync.agent.cli import main
from dagsync.agent.config import load_config
from dagsync.agent.health import Health
from dagsync.agent.loop import Agent, QueuePoller, make_syncer
from dagsync.agent.metrics import Metrics
from dagsync.core import keys, serde
from dagsync.core.models import ChangeEvent, HostStatus, Release
from dagsync.core.store import S3Store
from dagsync.local.procs import wait_for
from dagsync.publish.publisher import publish
from tests.support import signing
from tests.support.gate import Recorder
from tests.support.projects import EXAMPLES, write_release

WAIT = 30.0


def put_release(store: S3Store, tmp_path: Path, sequence: int, projects: dict[str, tuple[str, str]]) -> Release:
    """Upload one archive per project (a single `<project>_dag.py` file with `body`) and the release.json."""
    files = {name: (version, {f"{name}_dag.py": body}) for name, (version, body) in projects.items()}
    return write_release(store, tmp_path / "src", sequence, files)


def sample(agent: Agent, name: str) -> float:
    """A metric's value as the agent exposes it (its own registry)."""
    return agent.syncer.metrics.registry.get_sample_value(name) or 0.0


def link(dags: Path, project: str) -> str | None:
    return os.readlink(dags / project) if os.path.islink(dags / project) else None


def test_once_syncs_everything(aws: dict[str, Any], store: S3Store, tmp_path: Path, trusted: list[str]) -> None:
    rel = put_release(store, tmp_path, 1, {"alpha": ("1", "a = 1\n"), "beta": ("2", "b = 2\n")})
    dags = tmp_path / "dags"
    assert main(["once", *trusted, "--dags-dir", str(dags), "--bucket", aws["bucket"], "--listen", "0"]) == 0
    assert link(dags, "alpha") == f".dagsync/store/alpha/{rel.projects['alpha'].tree_name}"
    assert (dags / "beta" / "beta_dag.py").read_text() == "b = 2\n"


def test_once_project_fetches_only_that_archive(aws: dict[str, Any], store: S3Store, tmp_path: Path,
                                                trusted: list[str]) -> None:
    put_release(store, tmp_path, 1, {"alpha": ("1", "a\n"), "beta": ("2", "b\n")})
    dags = tmp_path / "dags"
    assert main(["once", *trusted, "--dags-dir", str(dags), "--bucket", aws["bucket"], "--project", "beta"]) == 0
    assert link(dags, "beta") and not os.path.lexists(dags / "alpha")
    assert sorted(p.name for p in (dags / ".dagsync/store").iterdir()) == ["beta"]


def test_once_project_not_in_release_fails_clearly(aws: dict[str, Any], store: S3Store, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str], trusted: list[str]) -> None:
    put_release(store, tmp_path, 1, {"alpha": ("1", "a\n")})
    rc = main(["once", *trusted, "--dags-dir", str(tmp_path / "dags"), "--bucket", aws["bucket"],
               "--project", "nope"])
    err = capsys.readouterr().err
    assert rc == 1 and "nope" in err and "not in release.json" in err and "alpha" in err


def test_once_without_release_json_fails_and_removes_nothing(aws: dict[str, Any], store: S3Store,
                                                             tmp_path: Path, trusted: list[str]) -> None:
    put_release(store, tmp_path, 1, {"alpha": ("1", "a\n")})
    dags = tmp_path / "dags"
    assert main(["once", *trusted, "--dags-dir", str(dags), "--bucket", aws["bucket"]]) == 0
    store.delete(keys.RELEASE_KEY)
    assert main(["once", *trusted, "--dags-dir", str(dags), "--bucket", aws["bucket"]]) == 1
    assert link(dags, "alpha")


@pytest.fixture
def running_agent(aws: dict[str, Any], tmp_path: Path, trusted: list[str]) -> Iterator[Any]:
    """Start an agent loop + poller in threads; yields a starter taking config overrides."""
    started: list[tuple[Agent, threading.Thread]] = []

    def start(**overrides: Any) -> Agent:
        flags = {"dags_dir": str(tmp_path / "dags"), "bucket": aws["bucket"], "host": "host-1",
                 "trusted_keys": trusted[1],
                 "queue_url": aws["host_queues"]["host-1"], "reconcile_interval": 3600.0, "poll_wait": 1,
                 "backoff_max": 0.2, **overrides}
        cfg = load_config(flags, {})
        metrics, stop, kick = Metrics(), threading.Event(), threading.Event()
        syncer = make_syncer(cfg, metrics, stop, write_status=True, verifier=signing.VERIFIER)
        agent = Agent(cfg, syncer, Health(metrics, 300), stop, kick)
        sqs = aws["settings"].client("sqs")
        QueuePoller(sqs, cfg.queue_url, cfg.poll_wait, kick, stop, metrics, cfg.backoff_max, agent.inbox).start()
        thread = threading.Thread(target=agent.run, daemon=True)
        thread.start()
        started.append((agent, thread))
        return agent

    yield start
    for agent, thread in started:
        agent.request_stop()
        thread.join(WAIT)


def test_change_event_through_sns_flips_without_waiting_for_the_timer(
    aws: dict[str, Any], store: S3Store, tmp_path: Path, running_agent: Any
) -> None:
    put_release(store, tmp_path, 1, {"alpha": ("1", "a = 1\n")})
    agent = running_agent()
    dags = tmp_path / "dags"
    assert wait_for(lambda: agent.health.ready, WAIT)
    rel = put_release(store, tmp_path, 2, {"alpha": ("2", "a = 2\n")})
    event = ChangeEvent(release_etag='"x"', root=json.loads(store.get(keys.RELEASE_KEY).data))  # type: ignore[union-attr]
    aws["settings"].client("sns").publish(TopicArn=aws["topic_arn"], Message=event.model_dump_json())
    assert wait_for(lambda: link(dags, "alpha") == f".dagsync/store/alpha/{rel.projects['alpha'].tree_name}", WAIT)
    assert sample(agent, "dagsync_agent_event_to_flip_seconds_sum") > 0
    status = serde.load_json(HostStatus, store.get(keys.host_status_key("host-1")).data, "status")  # type: ignore[union-attr]
    assert wait_for(lambda: json.loads(store.get(keys.host_status_key("host-1")).data)["sequence"] == 2, WAIT)  # type: ignore[union-attr]
    assert status.host == "host-1"


def test_the_validators_change_event_is_applied_as_a_delta(aws: dict[str, Any], store: S3Store,
                                                          running_agent: Any, tmp_path: Path) -> None:
    # Given a host holding release 1 as the validator wrote it
    gate = Recorder(store)
    publish(store, "sales", "1.0.0", EXAMPLES / "sales", promote_now=True, published_by="ci")
    assert gate.run().sequence == 1
    agent = running_agent()
    assert wait_for(lambda: agent.health.ready, WAIT)
    # When the validator releases a new version and its event reaches the host through SNS and SQS
    publish(store, "finance", "1.0.0", EXAMPLES / "finance", promote_now=True, published_by="ci")
    assert gate.run().sequence == 2
    aws["settings"].client("sns").publish(TopicArn=aws["topic_arn"], Message=gate.events[-1].model_dump_json())
    # Then it applies the delta: no metadata read, the new project live
    assert wait_for(lambda: link(tmp_path / "dags", "finance") is not None, WAIT)
    assert agent.syncer.metrics.registry.get_sample_value("dagsync_agent_deltas_total", {"result": "applied"}) == 1
    assert wait_for(lambda: agent.syncer.state.sequence == 2, WAIT)


def test_sqs_unreachable_the_timer_still_syncs(aws: dict[str, Any], store: S3Store, tmp_path: Path,
                                               running_agent: Any) -> None:
    put_release(store, tmp_path, 1, {"alpha": ("1", "a = 1\n")})
    missing = aws["host_queues"]["host-1"].rsplit("/", 1)[0] + "/no-such-queue"
    agent = running_agent(queue_url=missing, reconcile_interval=0.2)
    assert wait_for(lambda: agent.health.ready, WAIT)
    rel = put_release(store, tmp_path, 2, {"alpha": ("2", "a = 2\n")})
    want = f".dagsync/store/alpha/{rel.projects['alpha'].tree_name}"
    assert wait_for(lambda: link(tmp_path / "dags", "alpha") == want, WAIT)
    assert wait_for(lambda: sample(agent, "dagsync_agent_queue_errors_total") >= 1, WAIT)
