"""DagsyncBundle in real Airflow 3.3.2 (its own venv under .cache/): a real `airflow dag-processor` on the folder a
real `dagsync-agent run` keeps, task instances run through Airflow's own supervisor and task runner with their DAG
run's bundle version, and workers materializing releases from the bucket (moto on 127.0.0.1) or from the store."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dagsync.agent import views
from dagsync.agent.volume import Volume
from dagsync.core import keys
from dagsync.core.aws import AwsSettings
from dagsync.core.store import S3Store
from dagsync.local.airflow import BUNDLE_NAME, AirflowHome, bundle_settings, ensure_airflow
from dagsync.local.procs import LocalStackProcess, Process, start_agent, wait_for
from dagsync.publish.publisher import promote, publish, retire
from tests.e2e.reliability import free_port
from tests.support.projects import write_returning

pytestmark = pytest.mark.e2e
WAIT = 60.0
TASK = Path(__file__).with_name("airflow_task.py")
MARK = "DAGSYNC-TASK "


def keys_of(stack: LocalStackProcess) -> Path:
    """The PEM of the stack's release-signing key: every bundle here verifies what it serves."""
    return Path(stack.trusted_keys_file)


@dataclass
class Setup:
    work: Path
    dags: Path
    store: S3Store
    stack: LocalStackProcess
    agent: Process
    airflow: AirflowHome
    processor: Process

    def current(self) -> int:
        return views.current_sequence(Volume(self.dags)) or 0

    def publish(self, project: str, version: str, *, tags: tuple[str, ...] = ()) -> int:
        """Publish and promote; returns the release the host made current with it."""
        src = write_returning(self.work / "src", project, version, tags=tags)
        publish(self.store, project, version, src, promote_now=False, published_by="e2e")
        return self.change(lambda: promote(self.store, project, version), project, version)

    def change(self, write: Any, project: str, version: str | None) -> int:
        before = self.current()
        write()

        def landed() -> bool:
            view = views.current_view(Volume(self.dags))
            if view is None or view[0] <= before:
                return False
            tree = view[1].get(project)
            return tree is None if version is None else tree is not None and tree.startswith(f"{version}-")

        assert wait_for(landed, timeout=WAIT), self.logs()
        return self.current()

    def logs(self) -> str:
        return "\n".join(p.read_text()[-3000:] for p in (self.agent.log_path, self.processor.log_path) if p)

    def task(self, *args: str, **env: str) -> dict[str, Any]:
        done = subprocess.run([str(self.airflow.python), str(TASK), *args], capture_output=True, text=True,
                              timeout=300, env={**self.airflow.env, **env})
        lines = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
        assert done.returncode == 0 and lines, f"{args}: exit {done.returncode}\n{done.stdout[-4000:]}\n" \
                                               f"{done.stderr[-4000:]}"
        return dict(json.loads(lines[-1].removeprefix(MARK)))


@pytest.fixture(scope="module")
def setup(stack: LocalStackProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    python = ensure_airflow()
    work = tmp_path_factory.mktemp("airflow-bundle")
    dags = work / "dags"
    store = S3Store(AwsSettings(region="us-east-1", endpoint_url=stack.endpoint_url).client("s3"), stack.bucket)
    agent = start_agent(stack, "host-1", dags, log_path=work / "agent.log", extra=["--poll-wait", "2"])
    home = work / "airflow"
    airflow = AirflowHome(python, home, bundle_settings(dags, home, endpoint_url=stack.endpoint_url,
                                                        bucket=stack.bucket, trusted_keys=keys_of(stack)))
    airflow.migrate()
    processor = airflow.start_dag_processor()
    try:
        assert wait_for(lambda: airflow.db.bundle_refreshed(BUNDLE_NAME), timeout=WAIT), \
            (home / "dag-processor.log").read_text()[-3000:]
        yield Setup(work, dags, store, stack, agent, airflow, processor)
    finally:
        assert processor.stop() == 0, (home / "dag-processor.log").read_text()[-3000:]
        assert agent.stop() == 0


def test_the_dag_processor_registers_changes_and_retires_projects_at_their_release(setup: Setup) -> None:
    db = setup.airflow.db
    # Given two projects published, one after the other
    first = setup.publish("alpha", "1", tags=("first",))
    second = setup.publish("beta", "1")
    # Then Airflow registers each, stamped with the release that added it (at the latest, the next one)
    assert wait_for(lambda: db.registered("alpha_dag", first) and db.registered("beta_dag", second), timeout=WAIT), \
        setup.logs()
    assert db.dag("beta_dag") == (False, str(second))
    # When alpha changes (a new tag: a new serialized DAG)
    changed = setup.publish("alpha", "2", tags=("second",))
    # Then Airflow has the new DAG under that release's version
    assert wait_for(lambda: '"second"' in db.serialized("alpha_dag") and db.dag("alpha_dag") == (False, str(changed)),
                    timeout=WAIT), setup.logs()
    # When beta is retired
    retired = setup.change(lambda: retire(setup.store, "beta"), "beta", None)
    # Then Airflow marks its DAG stale, and the bundle's version is that release
    assert wait_for(lambda: db.stale("beta_dag"), timeout=WAIT), setup.logs()
    assert db.query("select version from dag_bundle where name = ?", BUNDLE_NAME) == [(str(retired),)]


def test_a_dag_run_keeps_the_code_of_its_release_through_airflows_own_task_runner(setup: Setup) -> None:
    db, airflow = setup.airflow.db, setup.airflow
    # Given a DAG whose task returns its version, at release N, and a DAG run created then
    old = setup.publish("pinned", "1")
    assert wait_for(lambda: db.dag("pinned_dag") == (False, str(old)), timeout=WAIT), setup.logs()
    assert airflow.run("dags", "trigger", "pinned_dag", "-r", "run_at_n").returncode == 0
    assert db.query("select bundle_version from dag_run where run_id = 'run_at_n'") == [(str(old),)]
    # When release N+1 changes only the task's code, and Airflow has it
    new = setup.publish("pinned", "2")
    assert wait_for(lambda: db.dag("pinned_dag") == (False, str(new)) and "'version 2'" in db.code("pinned_dag"),
                    timeout=WAIT), setup.logs()
    # Then the old run's task, run by Airflow's task runner with the run's bundle version, executes N's code
    ran = setup.task("run", "pinned_dag", "run_at_n", "which")
    assert ran["workload_bundle_version"] == str(old) and ran["exit"] == 0, ran
    assert ran["value"] == "version 1" and ran["state"] == "success", ran
    version_dir = airflow.home / "bundles" / BUNDLE_NAME / "versions" / str(old)
    assert version_dir.is_dir() and not version_dir.is_symlink()
    # And a new run executes N+1's
    assert airflow.run("dags", "trigger", "pinned_dag", "-r", "run_at_n1").returncode == 0
    ran = setup.task("run", "pinned_dag", "run_at_n1", "which")
    assert ran["workload_bundle_version"] == str(new) and ran["value"] == "version 2", ran


def test_a_worker_with_an_empty_volume_gets_release_n_from_the_bucket_and_refuses_a_tampered_archive(
    setup: Setup, tmp_path: Path
) -> None:
    # Given an older release N of a project, and a worker whose DAG volume is empty (no agent, no init container)
    n = setup.publish("gamma", "1")
    setup.publish("gamma", "2")
    worker = AirflowHome(setup.airflow.python, tmp_path / "worker",
                         bundle_settings(tmp_path / "worker-dags", tmp_path / "worker",
                                         endpoint_url=setup.stack.endpoint_url, bucket=setup.stack.bucket,
                                         trusted_keys=keys_of(setup.stack)))
    # When a task pinned to release N starts there
    got = setup.task("materialize", BUNDLE_NAME, str(n), **worker.settings, AIRFLOW_HOME=str(worker.home))
    # Then release N is materialized from the bucket: gamma at version 1, with every other project of N
    assert got["rescheduled"] is False and got["real_folder"], got
    assert "gamma/gamma_dag.py" in got["files"] and "alpha/alpha_dag.py" in got["files"], got
    assert "'version 1'" in (Path(got["path"]) / "gamma/gamma_dag.py").read_text()
    # Given gamma 2's archive replaced in the bucket by other bytes
    key = keys.archive_key("gamma", "2")
    blob = setup.store.get(key)
    assert blob is not None
    setup.store.put(key, blob.data[:-8] + b"tampered")
    # When a worker with another empty volume starts a task of the newest release
    other = {**worker.settings,
             "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST":
                 worker.settings["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"].replace(
                     str(tmp_path / "worker-dags"), str(tmp_path / "second-dags")),
             "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH": str(tmp_path / "second-bundles")}
    refused = setup.task("materialize", BUNDLE_NAME, str(setup.current()), **other, AIRFLOW_HOME=str(worker.home))
    # Then the task is rescheduled with the reason, and nothing of gamma 2 reached that volume
    assert refused["rescheduled"] is True and "project gamma" in refused["reason"], refused
    assert "sha256" in refused["reason"] or "bytes" in refused["reason"], refused
    assert not (tmp_path / "second-dags/.dagsync/store/gamma").exists()
    assert not (tmp_path / "second-bundles" / BUNDLE_NAME / "versions" / str(setup.current())).exists()


def test_with_the_bucket_unreachable_every_release_the_store_holds_is_still_served(setup: Setup,
                                                                                   tmp_path: Path) -> None:
    # Given the host's agent holds several releases (its views), and a bundle whose bucket endpoint refuses every
    # connection (nothing listens on that port: S3 is down, as far as the bundle can tell)
    held = views.list_views(Volume(setup.dags))
    assert len(held) >= 3, held
    down = f"http://127.0.0.1:{free_port()}"
    settings = bundle_settings(setup.dags, tmp_path, endpoint_url=down, bucket=setup.stack.bucket,
                               trusted_keys=keys_of(setup.stack))
    # When a task of each of those releases, and of one the host does not hold, starts on that host
    absent = str(max(held) + 1000)
    got = setup.task("materialize", BUNDLE_NAME, *(str(s) for s in held), absent, **settings,
                     AIRFLOW_HOME=str(tmp_path))
    # Then each release the host holds is served from the store
    for sequence in held:
        assert got[str(sequence)]["rescheduled"] is False and got[str(sequence)]["real_folder"], (sequence, got)
    # And the one it does not hold is refused with the reason, not served
    assert got[absent]["rescheduled"] is True, got[absent]
    assert "could not be read from the bucket" in got[absent]["reason"], got[absent]


def test_the_processor_side_reads_local_disk_only_and_never_raises(setup: Setup, tmp_path: Path) -> None:
    # Given a DAG processor's bundle over a volume the agent has not written yet, and no bucket at all
    volume = Volume(tmp_path / "dags")
    volume.ensure_layout()
    settings = bundle_settings(volume.root, tmp_path, endpoint_url=f"http://127.0.0.1:{free_port()}",
                               trusted_keys=keys_of(setup.stack))
    proc = subprocess.Popen([str(setup.airflow.python), str(TASK), "processor", BUNDLE_NAME], text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env={**setup.airflow.env, **settings, "AIRFLOW_HOME": str(tmp_path)})

    def tick() -> dict[str, Any]:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("tick\n")
        proc.stdin.flush()
        while not (line := proc.stdout.readline()).startswith(MARK):
            assert line, "the processor script exited"
        return dict(json.loads(line.removeprefix(MARK)))

    def release(sequence: int, trees: dict[str, str]) -> None:
        for project, tree in trees.items():
            volume.tree_path(project, tree).mkdir(parents=True, exist_ok=True)
        views.write_view(volume, sequence, trees)

    try:
        # Then before any release its version is "0" (never None)
        assert tick()["version"] == "0"
        # When the agent makes releases 3 and then 4 current, each tick takes it up, with each project's tree
        release(3, {"alpha": "1-aaaaaaaaaaaa"})
        assert tick()["version"] == "3"
        release(4, {"alpha": "2-bbbbbbbbbbbb", "beta": "1-cccccccccccc"})
        got = tick()
        assert got["version"] == "4" and got["data"] == {"release": 4, "projects": {
            "alpha": "2-bbbbbbbbbbbb", "beta": "1-cccccccccccc"}}, got
        assert got["path"].endswith("/live")
        # When current is garbage, then names a release whose view is missing, then the view the processor is
        # on disappears
        views.current_path(volume).unlink()
        views.current_path(volume).symlink_to("views/not-a-release")
        garbage = tick()
        views.current_path(volume).unlink()
        views.current_path(volume).symlink_to("views/5")
        missing = tick()
        shutil.rmtree(views.view_path(volume, 4))
        gone = tick()
        # Then it stays on the last release it knew each time, its path unchanged, and nothing raises
        for got in (garbage, missing, gone):
            assert got.get("version") == "4" and "raised" not in got, got
        assert os.readlink(got["path"]) == str(views.view_path(volume, 4))
    finally:
        if proc.stdin:
            proc.stdin.close()
        proc.wait(timeout=60)
