"""Run by the Airflow venv's python (never by pytest), in an Airflow home configured with DagsyncBundle. Prints one
JSON line prefixed with DAGSYNC-TASK.

    python airflow_task.py run DAG_ID RUN_ID TASK_ID     run one task instance of an existing DAG run through
        Airflow's own supervisor and task runner, with the bundle version of the run (exactly the workload the
        scheduler would send: workloads.ExecuteTask.make), the Execution API in-process (no api-server); prints
        the exit code, the task's state and its return value
    python airflow_task.py materialize NAME VERSION...    DagsyncBundle(name, version).initialize() as a worker does
    python airflow_task.py processor NAME                  the DAG processor's bundle (version None): for every line
        on stdin, refresh() then get_current_version(), as Airflow's refresh tick calls them; one JSON line each
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

MARK = "DAGSYNC-TASK "


def run(dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
    from airflow.api_fastapi.execution_api.app import InProcessExecutionAPI
    from airflow.executors import workloads
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.sdk.api.client import Client
    from airflow.sdk.execution_time.supervisor import supervise_task
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    def ti_query(session: Any) -> Any:
        return session.scalar(select(TaskInstance).where(
            TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id, TaskInstance.task_id == task_id))

    with create_session() as session:
        ti = ti_query(session)
        ti.try_number += 1  # what the scheduler does when it queues a task instance
        ti.state = TaskInstanceState.QUEUED
        session.flush()
        workload = workloads.ExecuteTask.make(ti)
        run_version = session.scalar(select(DagRun.bundle_version).where(DagRun.dag_id == dag_id,
                                                                         DagRun.run_id == run_id))
    client = Client(base_url=None, token="", dry_run=True, transport=InProcessExecutionAPI().transport)
    client.base_url = "http://in-process.invalid./"
    code = supervise_task(ti=workload.ti, bundle_info=workload.bundle_info, dag_rel_path=workload.dag_rel_path,
                          token="", client=client, subprocess_logs_to_stdout=True)
    with create_session() as session:
        state = ti_query(session).state
        row = session.scalar(select(XComModel).where(
            XComModel.dag_id == dag_id, XComModel.run_id == run_id, XComModel.task_id == task_id,
            XComModel.key == "return_value"))
        value = XComModel.deserialize_value(row) if row is not None else None
    return {"exit": code, "state": str(state), "value": value, "run_bundle_version": run_version,
            "workload_bundle_version": workload.bundle_info.version}


def materialize(name: str, *versions: str) -> dict[str, Any]:
    """One result per version (each a fresh bundle object, as each task's process has); a single version's result
    when only one is asked for."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.exceptions import AirflowRescheduleException

    results: dict[str, Any] = {}
    for version in versions:
        bundle = DagBundlesManager().get_bundle(name=name, version=version)
        try:
            bundle.initialize()
        except AirflowRescheduleException as exc:
            results[version] = {"rescheduled": True, "reason": str(exc)}
            continue
        files = sorted(os.path.relpath(os.path.join(d, f), bundle.path)
                       for d, _, fs in os.walk(bundle.path, followlinks=True) for f in fs if "__pycache__" not in d)
        results[version] = {"rescheduled": False, "path": str(bundle.path), "files": files,
                            "real_folder": os.path.isdir(bundle.path) and not os.path.islink(bundle.path)}
    return results[versions[0]] if len(versions) == 1 else results


def processor(name: str) -> None:
    from airflow.dag_processing.bundles.manager import DagBundlesManager

    bundle = DagBundlesManager().get_bundle(name=name, version=None)
    bundle.initialize()
    for _ in sys.stdin:
        try:
            bundle.refresh()
            refreshed = None
        except Exception as exc:  # Airflow logs this and skips the bundle until the next tick
            refreshed = f"{type(exc).__name__}: {exc}"
        try:
            got = bundle.get_current_version()
            out = {"version": got.version, "data": got.data, "path": str(bundle.path), "refresh_error": refreshed}
        except Exception as exc:  # what would stop the DAG processor
            out = {"raised": f"{type(exc).__name__}: {exc}"}
        print(MARK + json.dumps(out, default=str), flush=True)


def main() -> int:
    command, *args = sys.argv[1:]
    if command == "processor":
        processor(*args)
        return 0
    out = run(*args) if command == "run" else materialize(*args)
    print(MARK + json.dumps(out, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
