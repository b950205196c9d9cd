"""`dagsync-agent` as a real process against a moto server on 127.0.0.1: health, signals, exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from dagsync.core import keys
from dagsync.core.models import Release
from dagsync.core.store import S3Store
from dagsync.local.procs import wait_for
from tests.e2e.reliability import free_port, http
from tests.support import signing
from tests.support.forgery import EVIL, FORMS, SIGNATURE_FORMS, forge
from tests.support.moto import LoopbackMoto
from tests.support.projects import write_release

pytestmark = pytest.mark.e2e
WAIT = 60.0
BUCKET = "agent-proc-bucket"


class Moto:
    """The moto server, with the bucket and the host's queue."""

    def __init__(self, server: LoopbackMoto) -> None:
        self.server = server
        self.endpoint = server.endpoint
        self.s3 = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1")
        self.sqs = boto3.client("sqs", endpoint_url=self.endpoint, region_name="us-east-1")
        self.s3.create_bucket(Bucket=BUCKET)
        self.queue_url = self.sqs.create_queue(QueueName="agent-proc-host")["QueueUrl"]

    def release(self, tmp_path: Path, sequence: int, projects: dict[str, tuple[str, str]]) -> Release:
        """One archive per project (a single dag.py holding `body`) and the release.json naming them."""
        files = {name: (version, {"dag.py": body}) for name, (version, body) in projects.items()}
        return write_release(S3Store(self.s3, BUCKET), tmp_path / "src", sequence, files)


@pytest.fixture
def moto() -> Iterator[Moto]:
    with LoopbackMoto() as server:
        yield Moto(server)
        server.start()  # up again if the test took it down, so that its state is reset on the way out


class AgentProcess:
    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        self.fh = log.open("w")
        self.proc = subprocess.Popen([sys.executable, "-m", "dagsync.agent.cli", *args], stdout=self.fh,
                                     stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})

    def wait(self, timeout: float = WAIT) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self.fh.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(WAIT)
        self.fh.close()


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Any]:
    """Starts `dagsync-agent` processes that trust the tests' signing key (the key every release here is signed
    with), unless told otherwise."""
    procs: list[AgentProcess] = []
    trusted = str(signing.trusted_keys_file(tmp_path / "keys"))

    def _spawn(*args: str, env: dict[str, str] | None = None) -> AgentProcess:
        env = {"DAGSYNC_TRUSTED_KEYS": trusted, **(env or {})}
        proc = AgentProcess(list(args), tmp_path / f"agent-{len(procs)}.log", env)
        procs.append(proc)
        return proc

    yield _spawn
    for proc in procs:
        proc.stop()


def syncs_total(body: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
               if line.startswith("dagsync_agent_syncs_total{"))


def run_args(moto: Moto, dags: Path, port: int, *extra: str) -> list[str]:
    return ["run", "--dags-dir", str(dags), "--bucket", BUCKET, "--endpoint-url", moto.endpoint,
            "--queue-url", moto.queue_url, "--host", "proc-host", "--listen", f"127.0.0.1:{port}",
            "--poll-wait", "1", "--backoff-max", "0.5", *extra]


def test_run_serves_health_follows_events_and_obeys_signals(moto: Moto, tmp_path: Path, spawn: Any) -> None:
    moto.release(tmp_path, 1, {"alpha": ("1", "a = 1\n")})
    dags, port = tmp_path / "dags", free_port()
    agent = spawn(*run_args(moto, dags, port, "--reconcile-interval", "3600"))
    assert wait_for(lambda: http(port, "/readyz") == (200, "ok\n"), WAIT), agent.log.read_text()
    assert http(port, "/healthz") == (200, "ok\n")
    assert (dags / "alpha" / "dag.py").read_text() == "a = 1\n"

    # A change message wakes the agent long before the hour-long timer.
    rel = moto.release(tmp_path, 2, {"alpha": ("2", "a = 2\n")})
    moto.sqs.send_message(QueueUrl=moto.queue_url, MessageBody='{"sequence": 2}')
    want = f".dagsync/store/alpha/{rel.projects['alpha'].tree_name}"
    assert wait_for(lambda: os.readlink(dags / "alpha") == want, WAIT), agent.log.read_text()

    # POST /sync and SIGHUP each force a sync.
    before = syncs_total(http(port, "/metrics")[1])
    assert http(port, "/sync", "POST")[0] == 202
    assert wait_for(lambda: syncs_total(http(port, "/metrics")[1]) >= before + 1, WAIT)
    agent.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: syncs_total(http(port, "/metrics")[1]) >= before + 2, WAIT)
    metrics = http(port, "/metrics")[1]
    assert "dagsync_agent_applied_sequence 2.0" in metrics and "dagsync_agent_projects_live 1.0" in metrics
    # the change, read from release.json on a settled volume, looked only at what changed (docs/design.md)
    assert 'dagsync_agent_event_looks_total{look="changed"} 1.0' in metrics, [
        line for line in metrics.splitlines() if "event_looks" in line]

    agent.proc.send_signal(signal.SIGTERM)
    assert agent.wait() == 0
    assert (dags / "alpha" / "dag.py").read_text() == "a = 2\n"
    status = moto.s3.get_object(Bucket=BUCKET, Key=keys.host_status_key("proc-host"))["Body"].read()
    assert b'"sequence": 2' in status


def test_s3_unreachable_stays_ready_but_degraded(moto: Moto, tmp_path: Path, spawn: Any) -> None:
    moto.release(tmp_path, 1, {"alpha": ("1", "a = 1\n")})
    dags, port = tmp_path / "dags", free_port()
    agent = spawn(*run_args(moto, dags, port, "--reconcile-interval", "0.3"))
    assert wait_for(lambda: http(port, "/readyz") == (200, "ok\n"), WAIT), agent.log.read_text()
    moto.server.stop()
    assert wait_for(lambda: http(port, "/readyz")[1].startswith("degraded:"), WAIT), agent.log.read_text()
    assert http(port, "/readyz")[0] == 200
    assert http(port, "/healthz")[0] == 200
    assert (dags / "alpha" / "dag.py").read_text() == "a = 1\n"


def test_restarted_while_s3_is_down_serves_the_last_good_folder_as_ready(moto: Moto, tmp_path: Path,
                                                                          spawn: Any) -> None:
    # Given a host that synced once and stopped
    moto.release(tmp_path, 1, {"alpha": ("1", "a = 1\n")})
    dags, port = tmp_path / "dags", free_port()
    first = spawn(*run_args(moto, dags, port, "--reconcile-interval", "3600"))
    assert wait_for(lambda: http(port, "/readyz") == (200, "ok\n"), WAIT), first.log.read_text()
    first.proc.send_signal(signal.SIGTERM)
    assert first.wait() == 0
    # When S3 is unreachable and the agent starts again
    moto.server.stop()
    again = spawn(*run_args(moto, dags, port, "--reconcile-interval", "0.3"))
    # Then it is ready on what the volume holds, says degraded, and the DAGs are intact
    assert wait_for(lambda: http(port, "/readyz")[1].startswith("degraded:"), WAIT), again.log.read_text()
    assert http(port, "/readyz")[0] == 200
    assert (dags / "alpha" / "dag.py").read_text() == "a = 1\n"
    # And a fresh, empty volume in the same outage is not ready: it has nothing to serve
    port2 = free_port()
    empty = spawn(*run_args(moto, tmp_path / "empty", port2, "--reconcile-interval", "0.3"))
    assert wait_for(lambda: http(port2, "/readyz")[0] == 503, WAIT), empty.log.read_text()


def test_max_failures_exits_non_zero(tmp_path: Path, spawn: Any) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    agent = spawn("run", "--dags-dir", str(tmp_path / "dags"), "--bucket", BUCKET, "--endpoint-url", closed,
                  "--listen", "0", "--max-failures", "2", "--backoff-max", "0.1")
    assert agent.wait() == 1
    assert "too many consecutive failures" in agent.log.read_text()


def test_once_project_in_a_fresh_process(moto: Moto, tmp_path: Path, spawn: Any) -> None:
    moto.release(tmp_path, 1, {"alpha": ("1", "a\n"), "beta": ("1", "b\n")})
    base = ["once", "--dags-dir", str(tmp_path / "dags"), "--bucket", BUCKET, "--endpoint-url", moto.endpoint]
    assert spawn(*base, "--project", "alpha").wait() == 0
    assert (tmp_path / "dags" / "alpha").is_symlink() and not (tmp_path / "dags" / "beta").exists()
    missing = spawn(*base, "--project", "gamma")
    assert missing.wait() == 1
    assert "gamma" in missing.log.read_text() and "not in release.json" in missing.log.read_text()


def test_bad_configuration_exits_2_naming_the_value(tmp_path: Path, spawn: Any) -> None:
    agent = spawn("run", "--dags-dir", str(tmp_path), "--bucket", BUCKET,
                  env={"DAGSYNC_RECONCILE_INTERVAL": "soon"})
    assert agent.wait() == 2
    assert "reconcile_interval (env DAGSYNC_RECONCILE_INTERVAL)" in agent.log.read_text()


def metric(body: str, name: str, reason: str) -> float:
    line = next((ln for ln in body.splitlines() if ln.startswith(f'{name}{{reason="{reason}"}}')), None)
    return float(line.rsplit(" ", 1)[1]) if line else 0.0


def test_run_refuses_every_hand_written_release_keeps_its_dags_and_says_why(moto: Moto, tmp_path: Path,
                                                                           spawn: Any) -> None:
    # Given a daemon that applied release 2 (the history holds 1 and 2)
    moto.release(tmp_path, 1, {"alpha": ("1", "a = 1\n")})
    rel = moto.release(tmp_path, 2, {"alpha": ("2", "a = 2\n")})
    dags, port = tmp_path / "dags", free_port()
    agent = spawn(*run_args(moto, dags, port, "--reconcile-interval", "3600"))
    assert wait_for(lambda: http(port, "/readyz") == (200, "ok\n"), WAIT), agent.log.read_text()
    live = os.readlink(dags / "alpha")
    store = S3Store(moto.s3, BUCKET)
    genuine = store.get(keys.RELEASE_KEY)
    assert genuine is not None and live.endswith(rel.projects["alpha"].tree_name)
    for form, reason in FORMS.items():
        # When release.json is written by hand in this form and the host syncs
        forge(store, form, tmp_path / "forged")
        def refusals(reason: str = reason) -> float:
            return metric(http(port, "/metrics")[1], "dagsync_agent_releases_refused_total", reason)

        before = refusals()
        assert http(port, "/sync", "POST")[0] == 202
        assert wait_for(lambda: refusals() > before, WAIT), (form, agent.log.read_text()[-3000:])  # noqa: B023
        # Then its DAGs are as they were, and (for a bad signature) /readyz and hosts/<host>.json say why
        assert os.readlink(dags / "alpha") == live and not os.path.lexists(dags / EVIL), form
        if form in SIGNATURE_FORMS:
            assert wait_for(lambda: "signature" in http(port, "/readyz")[1], WAIT), form
            code, body = http(port, "/readyz")
            assert code == 200 and body.startswith("degraded: release.json refused"), (form, body)
            status = json.loads(moto.s3.get_object(Bucket=BUCKET, Key=keys.host_status_key("proc-host"))["Body"]
                                .read())
            assert "signature" in status["last_error"] and status["sequence"] == 2, (form, status)
        # And the genuine release back in place, the host is healthy again
        store.put(keys.RELEASE_KEY, genuine.data)
        assert http(port, "/sync", "POST")[0] == 202
        assert wait_for(lambda: http(port, "/readyz") == (200, "ok\n"), WAIT), (form, agent.log.read_text()[-3000:])
    # And the log says, for each, that the release was refused and why
    refusals = [json.loads(line) for line in agent.log.read_text().splitlines()
                if '"msg": "release refused"' in line]
    assert {r["reason"] for r in refusals} == set(FORMS.values())
    assert all("signature" in r["error"] for r in refusals if r["reason"] in {FORMS[f] for f in SIGNATURE_FORMS})
    agent.proc.send_signal(signal.SIGTERM)
    assert agent.wait() == 0


@pytest.mark.parametrize("form", list(FORMS))
def test_once_refuses_a_hand_written_release_in_a_fresh_process(form: str, moto: Moto, tmp_path: Path,
                                                               spawn: Any) -> None:
    # Given releases 1 and 2, and release.json then written by hand in this form
    moto.release(tmp_path, 1, {"alpha": ("1", "a = 1\n")})
    moto.release(tmp_path, 2, {"alpha": ("2", "a = 2\n")})
    forge(S3Store(moto.s3, BUCKET), form, tmp_path / "forged")
    # When an init container runs `dagsync-agent once` on an empty volume
    dags = tmp_path / "dags"
    agent = spawn("once", "--dags-dir", str(dags), "--bucket", BUCKET, "--endpoint-url", moto.endpoint)
    # Then it exits 1, nothing is linked, and its log says release.json was refused and why
    assert agent.wait() == 1
    log = agent.log.read_text()
    assert not dags.exists() or not any(p.is_symlink() for p in dags.iterdir())
    refusal = next(json.loads(line) for line in log.splitlines() if '"msg": "release refused"' in line)
    assert refusal["reason"] == FORMS[form]
    assert "signature" in refusal["error"] if form in SIGNATURE_FORMS else "older release put back" in refusal["error"]


def test_without_trusted_keys_the_agent_does_not_start_unless_told_to_accept_unsigned(moto: Moto, tmp_path: Path,
                                                                                     spawn: Any) -> None:
    moto.release(tmp_path, 1, {"alpha": ("1", "a = 1\n")})
    base = ["once", "--dags-dir", str(tmp_path / "dags"), "--bucket", BUCKET, "--endpoint-url", moto.endpoint]
    refused = spawn(*base, env={"DAGSYNC_TRUSTED_KEYS": ""})
    assert refused.wait() == 2 and "no trusted release signing keys" in refused.log.read_text()
    assert not (tmp_path / "dags").exists()
    lax = spawn(*base, "--allow-unsigned", env={"DAGSYNC_TRUSTED_KEYS": ""})
    assert lax.wait() == 0
    assert "accepting unsigned releases" in lax.log.read_text()
