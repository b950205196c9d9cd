"""The whole loop with real processes: `dagsync local up`, the `dagsync` CLI and `dagsync-agent`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from dagsync.core import releases
from dagsync.core.aws import AwsSettings
from dagsync.core.signatures import verifier_from
from dagsync.core.store import S3Store
from dagsync.local.procs import (
    LocalStackProcess,
    _bin,
    agent_command,
    aws_env,
    start_agent,
    start_local_stack,
    wait_for,
)
from tests.e2e.conftest import link_target
from tests.support.projects import EXAMPLES

pytestmark = pytest.mark.e2e


def dagsync(stack: LocalStackProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **aws_env(stack)}
    return subprocess.run([*_bin("dagsync"), *args], capture_output=True, text=True, env=env, timeout=120)


def test_publish_promote_retire_land_on_the_host(stack: LocalStackProcess, tmp_path: Path) -> None:
    # Given an agent on host-1 with an empty DAG folder
    dags = tmp_path / "dags"
    agent = start_agent(stack, "host-1", dags, log_path=tmp_path / "agent.log")
    try:
        # When CI publishes two projects and waits for the release
        for project in ("sales", "finance"):
            done = dagsync(stack, "publish", project, "1.0.0", str(EXAMPLES / project), "--promote", "--wait")
            assert done.returncode == 0, done.stderr
        # Then both appear, complete, behind relative symlinks, and the store is hidden from Airflow
        assert wait_for(lambda: (dags / "finance" / "finance_lib" / "__init__.py").exists(), timeout=30)
        assert (dags / "sales" / "daily_sales_report.py").read_bytes() == (
            EXAMPLES / "sales" / "daily_sales_report.py").read_bytes()
        target = link_target(dags, "sales")
        assert target is not None and not os.path.isabs(target) and target.startswith(".dagsync/store/sales/1.0.0-")
        assert ".dagsync" in (dags / ".airflowignore").read_text().splitlines()

        # When a new version is published and promoted
        v2 = tmp_path / "sales-v2"
        shutil.copytree(EXAMPLES / "sales", v2)
        (v2 / "new_dag.py").write_text("from airflow.sdk import DAG\n\nwith DAG(dag_id='sales_new'):\n    pass\n")
        assert dagsync(stack, "publish", "sales", "2.0.0", str(v2), "--promote", "--wait").returncode == 0
        # Then the link flips to it
        assert wait_for(lambda: (dags / "sales" / "new_dag.py").exists(), timeout=30)

        # When the project is rolled back with promote, and finance is retired
        assert dagsync(stack, "promote", "sales", "1.0.0", "--wait").returncode == 0
        assert wait_for(lambda: not (dags / "sales" / "new_dag.py").exists(), timeout=30)
        assert dagsync(stack, "retire", "finance", "--wait").returncode == 0
        assert wait_for(lambda: not os.path.lexists(dags / "finance"), timeout=30)

        # And status reports the release and the host
        status = json.loads(dagsync(stack, "status", "--json").stdout)
        assert status["manifest"] == {"sales": "1.0.0"}
        assert set(status["release"]["projects"]) == {"sales"}
    finally:
        assert agent.stop() == 0


def test_reconcile_repairs_a_deleted_symlink_with_no_event(stack: LocalStackProcess, tmp_path: Path) -> None:
    # Given a project live on host-2, synced by an agent WITHOUT a queue (only the timer can act)
    assert dagsync(stack, "publish", "marketing", "1.0.0", str(EXAMPLES / "marketing"), "--promote",
                   "--wait").returncode == 0
    dags = tmp_path / "dags"
    cmd = agent_command(stack, "host-2", dags, reconcile_interval=0.5)
    cmd.remove("--queue-url")
    cmd.remove(stack.info["host_queues"]["host-2"])
    agent = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: (dags / "marketing" / "campaign_sync.py").exists(), timeout=30)
        before = link_target(dags, "marketing")
        # When someone deletes the symlink on the host
        (dags / "marketing").unlink()
        # Then the next full reconcile puts it back, pointing at the same tree
        assert wait_for(lambda: link_target(dags, "marketing") == before, timeout=30)
    finally:
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(30) == 0


def test_once_syncs_only_the_named_project_and_exits(stack: LocalStackProcess, tmp_path: Path) -> None:
    # Given two live projects
    for project in ("sales", "marketing"):
        assert dagsync(stack, "publish", project, "1.0.0", str(EXAMPLES / project), "--promote",
                       "--wait").returncode == 0
    dags = tmp_path / "dags"
    # When an init container syncs only marketing
    cmd = agent_command(stack, "host-1", dags, mode="once", extra=["--project", "marketing"])
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    # Then only marketing is there
    assert done.returncode == 0, done.stderr
    assert (dags / "marketing" / "campaign_sync.py").exists()
    assert not os.path.lexists(dags / "sales")
    # And asking for a project that is not live fails clearly
    bad = subprocess.run(agent_command(stack, "host-1", tmp_path / "other", mode="once",
                                       extra=["--project", "nope"]), capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "nope" in bad.stderr


def test_wait_reports_a_rejection_with_its_reason(stack: LocalStackProcess, tmp_path: Path) -> None:
    # Given a project whose second version declares a dag_id another live project owns
    assert dagsync(stack, "publish", "sales", "1.0.0", str(EXAMPLES / "sales"), "--promote", "--wait").returncode == 0
    clash = tmp_path / "clash"
    clash.mkdir()
    (clash / "dup.py").write_text("from airflow.sdk import DAG\n\nwith DAG(dag_id='sales_refunds'):\n    pass\n")
    # When it is published with --wait
    done = dagsync(stack, "publish", "copycat", "1.0.0", str(clash), "--promote", "--wait")
    # Then CI gets exit 3 and the validator's reason, and the release does not include it
    assert done.returncode == 3, done.stdout + done.stderr
    assert "sales_refunds" in done.stderr and "more than one live project" in done.stderr
    status = json.loads(dagsync(stack, "status", "--json").stdout)
    assert "copycat" not in status["release"]["projects"]
    assert status["rejection"] is not None
    # Cleanup for the following tests: take the bad project back out of the manifest
    assert dagsync(stack, "retire", "copycat", "--wait").returncode == 0


def test_local_up_signs_with_a_kms_key_and_writes_its_public_key_where_it_was_told(tmp_path: Path) -> None:
    # Given `dagsync local up --json --trusted-keys-file PATH`
    keys_file = tmp_path / "given" / "release.pem"
    with open(tmp_path / "stack.log", "w") as log:
        stack = start_local_stack(hosts=1, log=log, trusted_keys_file=keys_file)
        try:
            # Then its ready line names that file, which holds the public key of the key it signs with
            assert stack.trusted_keys_file == str(keys_file) and keys_file.read_bytes().startswith(b"-----BEGIN")
            assert dagsync(stack, "publish", "sales", "1.0.0", str(EXAMPLES / "sales"), "--promote",
                           "--wait").returncode == 0
            store = S3Store(AwsSettings(region="us-east-1", endpoint_url=stack.endpoint_url).client("s3"),
                            stack.bucket)
            stored = releases.read_root(store, verifier_from([keys_file]))
            assert stored is not None and stored.root.signature is not None
            # And an agent given nothing else applies what it signed
            done = subprocess.run(agent_command(stack, "host-1", tmp_path / "dags", mode="once"),
                                  capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            assert '"msg": "release signatures checked"' in done.stderr
        finally:
            assert stack.stop() == 0
    # And it wrote nothing but that file: the given folder holds it alone, and it stays after the stack stops
    assert sorted(p.name for p in keys_file.parent.iterdir()) == ["release.pem"]


def test_local_up_by_default_keeps_its_key_file_in_a_folder_of_its_own_and_removes_it(tmp_path: Path) -> None:
    with open(tmp_path / "stack.log", "w") as log:
        stack = start_local_stack(hosts=1, log=log)
        keys_file = Path(stack.trusted_keys_file)
        try:
            assert keys_file.is_file() and keys_file.parent.name.startswith("dagsync-local-")
        finally:
            assert stack.stop() == 0
    assert not keys_file.parent.exists()
