"""The parse gate with real Airflow 3.3.2 (the cached venv) and real processes: `dagsync publish` / `validate` parse
with Airflow's DagBag, record the real dag_ids and parse times, refuse what Airflow cannot load or what parses too
slowly, and keep the publisher's credentials out of DAG code's reach; the validator catches factory-made clashes."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from dagsync.core import keys
from dagsync.core.archive import iter_members
from dagsync.core.aws import AwsSettings
from dagsync.core.dagcheck import inspect_members
from dagsync.core.documents import read_catalog
from dagsync.core.models import CatalogEntry
from dagsync.core.store import S3Store
from dagsync.local.procs import LocalStackProcess, _bin, aws_env, start_agent, wait_for
from dagsync.publish import parsing
from dagsync.publish.content import Checks
from dagsync.publish.parsing import AirflowPython, network_namespace
from dagsync.publish.publisher import publish as publish_in_process
from tests.e2e.airflow_venv import ensure_airflow, parse_once

pytestmark = pytest.mark.e2e
WAIT = 60.0
HEAD = "from __future__ import annotations\n\nimport pendulum\nfrom airflow.sdk import DAG\n\n"
ARGS = "schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz='UTC'), catchup=False"

# dag_ids from a loop, from a YAML file in the project, and through globals(): none of them visible to `ast`
FACTORY = {
    "loop_dags.py": HEAD + "for region in ('emea', 'apac', 'amer'):\n"
                           f"    with DAG(dag_id=f'factory_loop_{{region}}', {ARGS}):\n        pass\n",
    "yaml_dags.py": HEAD + "from pathlib import Path\n\nimport yaml\n\n"
                           "SPEC = yaml.safe_load(Path(__file__).with_name('pipelines.yaml').read_text())\n"
                           "for pipeline in SPEC['pipelines']:\n"
                           f"    with DAG(dag_id=pipeline['id'], {ARGS}, tags=pipeline['tags']):\n        pass\n",
    "pipelines.yaml": "pipelines:\n  - {id: factory_yaml_orders, tags: [orders]}\n"
                      "  - {id: factory_yaml_refunds, tags: [refunds]}\n",
    "globals_dags.py": HEAD + "def build(name: str) -> DAG:\n"
                              f"    return DAG(dag_id='factory_globals_' + name, {ARGS})\n\n\n"
                              "for name in ('daily', 'hourly'):\n    globals()[f'dag_{name}'] = build(name)\n",
}
FACTORY_IDS = {"loop_dags.py": ["factory_loop_amer", "factory_loop_apac", "factory_loop_emea"],
               "yaml_dags.py": ["factory_yaml_orders", "factory_yaml_refunds"],
               "globals_dags.py": ["factory_globals_daily", "factory_globals_hourly"]}


@pytest.fixture(scope="module")
def airflow_python() -> Path:
    return ensure_airflow()


@pytest.fixture
def store(stack: LocalStackProcess) -> S3Store:
    return S3Store(AwsSettings(region="us-east-1", endpoint_url=stack.endpoint_url).client("s3"), stack.bucket)


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def dagsync(stack: LocalStackProcess, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*_bin("dagsync"), *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **aws_env(stack), **env})


def publish(stack: LocalStackProcess, python: Path, project: str, version: str, folder: Path, *args: str,
            **env: str) -> subprocess.CompletedProcess[str]:
    return dagsync(stack, "publish", project, version, str(folder), "--airflow-python", str(python), *args, **env)


@dataclass(frozen=True)
class Factory:
    folder: Path
    validated: subprocess.CompletedProcess[str]
    published: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def factory(stack: LocalStackProcess, airflow_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Factory:
    """The factory project, validated with $DAGSYNC_AIRFLOW_PYTHON set, then published and promoted (live)."""
    folder = write(tmp_path_factory.mktemp("src") / "factory", FACTORY)
    validated = dagsync(stack, "validate", str(folder), DAGSYNC_AIRFLOW_PYTHON=str(airflow_python))
    published = publish(stack, airflow_python, "factory", "1", folder, "--promote", "--wait", "--json")
    assert published.returncode == 0, published.stderr
    return Factory(folder, validated, published)


def entry_of(store: S3Store, project: str, version: str) -> CatalogEntry:
    catalog = read_catalog(store, project)
    entry = catalog.find(version) if catalog else None
    assert entry is not None, f"{project} {version} is not in the catalog"
    return entry


def test_factory_dag_ids_recorded_at_publish_are_what_airflow_finds_on_a_host(
        factory: Factory, stack: LocalStackProcess, store: S3Store, airflow_python: Path, tmp_path: Path) -> None:
    # Given a project whose dag_ids come from a loop, a YAML file and globals(), validated with
    # $DAGSYNC_AIRFLOW_PYTHON set and then published and promoted with --airflow-python (the fixture)
    # Then validate said it parsed with Airflow, from the environment variable
    assert factory.validated.returncode == 0, factory.validated.stderr
    assert "parsed by Airflow 3.3.2's DagBag" in factory.validated.stdout
    assert "from $DAGSYNC_AIRFLOW_PYTHON" in factory.validated.stdout
    # And the catalog records each file's dag_ids and parse time, and the Airflow version
    entry = entry_of(store, "factory", "1")
    assert entry.parse is not None and entry.parse.airflow_version == "3.3.2"
    assert {path: f.dag_ids for path, f in entry.parse.files.items()} == FACTORY_IDS
    assert entry.parse.seconds == pytest.approx(sum(f.seconds for f in entry.parse.files.values()), abs=0.01)
    recorded = set(entry.dag_ids)
    assert recorded == {d for ids in FACTORY_IDS.values() for d in ids}
    assert recorded == set(json.loads(factory.published.stdout)["dag_ids"])
    # And `ast` sees fewer (none: every id is made at run time)
    archive = store.get(entry.archive_key)
    assert archive is not None
    assert set(inspect_members(iter_members(io.BytesIO(archive.data))).dag_ids) < recorded
    # When a host syncs the release and Airflow parses the host's DAG folder
    dags = tmp_path / "host" / "dags"
    agent = start_agent(stack, "host-1", dags, log_path=tmp_path / "agent.log")
    try:
        assert wait_for(lambda: (dags / "factory" / "pipelines.yaml").exists(), timeout=WAIT)
    finally:
        assert agent.stop() == 0
    parsed = parse_once(airflow_python, dags, tmp_path / "airflow-home")
    # Then Airflow finds exactly the recorded dag_ids under the project's link: all of them, nothing else
    assert parsed["fatal"] is None and parsed["errors"] == {}, parsed
    on_host = {d for d, loc in parsed["dags"].items() if loc.startswith(f"{dags}/factory/")}
    assert on_host == recorded


def test_a_factory_made_clash_with_a_live_project_is_rejected_naming_both(
        factory: Factory, stack: LocalStackProcess, airflow_python: Path, tmp_path: Path) -> None:
    # Given factory live, and team B's project, which makes one of factory's dag_ids at run time
    folder = write(tmp_path / "teamb", {"made.py": HEAD + "PREFIX = 'factory_loop_'\n\n"
                                                          f"with DAG(dag_id=PREFIX + 'apac', {ARGS}):\n    pass\n"})
    # When team B publishes and promotes it (its own project is fine on its own)
    done = publish(stack, airflow_python, "teamb", "1", folder, "--promote", "--wait", "--json")
    # Then the validator rejects the manifest, naming the dag_id and both projects
    assert done.returncode == 3, (done.stdout, done.stderr)
    reason = json.loads(done.stdout)["reason"]
    assert "dag_id 'factory_loop_apac' is declared by more than one live project: factory, teamb" in reason
    # And retiring team B releases again (a rejected manifest would block everyone after it)
    assert dagsync(stack, "retire", "teamb", "--wait").returncode == 0


def test_a_slow_file_is_refused_by_the_budget_and_let_through_by_the_project_file(
        stack: LocalStackProcess, store: S3Store, airflow_python: Path, tmp_path: Path) -> None:
    # Given a file whose top-level code takes 5.5 s (the default budget is 5 s per file)
    folder = write(tmp_path / "slowpoke", {"slow.py": HEAD + "import time\n\ntime.sleep(5.5)\n\n"
                                                             f"with DAG(dag_id='slowpoke', {ARGS}):\n    pass\n"})
    # When it is published
    done = publish(stack, airflow_python, "slowpoke", "1", folder)
    # Then it is refused with the file, its time and the budget, and nothing is uploaded
    assert done.returncode == 1, done.stdout
    assert "slow.py: parsing " in done.stderr and "; the budget is 5 s per file" in done.stderr
    assert store.get(keys.archive_key("slowpoke", "1")) is None and read_catalog(store, "slowpoke") is None
    # When the project file raises its budget to 8 s
    write(folder, {"dagsync.yaml": "parse:\n  refuse_above_seconds: 8\n"})
    done = publish(stack, airflow_python, "slowpoke", "1", folder)
    # Then it is published, with a warning (over 1 s) and its parse time recorded
    assert done.returncode == 0, done.stderr
    assert "warning: slow.py: parsing took" in done.stderr and "refused above 8 s" in done.stderr
    entry = entry_of(store, "slowpoke", "1")
    assert entry.parse is not None and entry.parse.files["slow.py"].seconds >= 5.5


def test_a_file_that_never_finishes_is_stopped_and_leaves_nothing_running(
        stack: LocalStackProcess, airflow_python: Path, tmp_path: Path) -> None:
    # Given a file whose top-level code starts a process and then never returns
    marker = "313.25"
    folder = write(tmp_path / "forever", {"forever.py": HEAD + "import subprocess\n\n"
                                                           f"subprocess.Popen(['sleep', '{marker}'])\n"
                                                           "while True:\n    pass\n"})
    # When it is published with a 1 s budget
    done = publish(stack, airflow_python, "forever", "1", folder, "--parse-budget", "1")
    # Then it is refused once it has run past the budget, and nothing it started is left running
    assert done.returncode == 1, done.stdout
    assert "forever.py: parsing was stopped after" in done.stderr and "the budget is 1 s per file" in done.stderr
    assert not [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", marker]]


def test_an_import_error_is_refused_with_airflows_message(
        stack: LocalStackProcess, airflow_python: Path, tmp_path: Path) -> None:
    folder = write(tmp_path / "broken", {"fine.py": HEAD + f"with DAG(dag_id='broken_fine', {ARGS}):\n    pass\n",
                                         "broken.py": HEAD + "import definitely_not_installed_pkg\n"})
    done = publish(stack, airflow_python, "broken", "1", folder)
    assert done.returncode == 1, done.stdout
    assert ("broken.py: Airflow could not load it: ModuleNotFoundError: No module named "
            "'definitely_not_installed_pkg' (at broken/broken.py:6)") in done.stderr


def test_dag_code_sees_none_of_the_publishers_credentials(
        stack: LocalStackProcess, airflow_python: Path, tmp_path: Path) -> None:
    # Given a publisher with AWS credentials in its environment and under its HOME, and other secrets
    home = write(tmp_path / "home", {".aws/credentials": "[default]\naws_access_key_id = AKIAHOME\n",
                                     ".aws/config": "[default]\nregion = us-east-1\n"})
    secrets = {"HOME": str(home), "AWS_SESSION_TOKEN": "session-token", "DB_PASSWORD": "hunter2",
               "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://169.254.170.23/creds", "GITHUB_TOKEN": "ghp_x",
               "AWS_WEB_IDENTITY_TOKEN_FILE": str(home / "token"), "AIRFLOW_CONN_WAREHOUSE": "postgres://u:p@h/d"}
    # And a DAG file that looks for them at top level, and tries the network (the moto server, listening here)
    port = stack.endpoint_url.rsplit(":", 1)[1]
    nosy = HEAD + ("import os\nimport socket\n\n"
                   "WORDS = ('AWS', 'SECRET', 'TOKEN', 'PASSWORD', 'AIRFLOW_CONN', 'DAGSYNC')\n"
                   "seen = [f'saw_env_{k}' for k in sorted(os.environ) if any(w in k for w in WORDS)\n"
                   "        and k != 'AWS_EC2_METADATA_DISABLED']\n"
                   "seen += [f'saw_file_{n}' for n in ('credentials', 'config')\n"
                   "         if os.path.exists(os.path.expanduser(f'~/.aws/{n}'))]\n"
                   "try:\n"
                   f"    socket.create_connection(('127.0.0.1', {port}), timeout=2).close()\n"
                   "    seen.append('network_open')\n"
                   "except OSError:\n"
                   "    seen.append('network_refused')\n"
                   "for dag_id in seen if len(seen) > 1 else [*seen, 'saw_no_credentials']:\n"
                   f"    with DAG(dag_id=dag_id, {ARGS}):\n        pass\n")
    folder = write(tmp_path / "nosy", {"nosy.py": nosy})
    # When it is published
    done = publish(stack, airflow_python, "nosy", "1", folder, "--json", **secrets)
    # Then its top-level code saw no credential, no ~/.aws file and no network
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["dag_ids"] == ["network_refused", "saw_no_credentials"]


@pytest.mark.skipif(not network_namespace(), reason="this system gives no unprivileged network namespace "
                                                     "(unshare -rn); the parse falls back to the Python guard")
def test_with_a_network_namespace_not_even_a_subprocess_of_dag_code_reaches_the_network(
        stack: LocalStackProcess, airflow_python: Path, tmp_path: Path) -> None:
    # Given a listener on the loopback interface, and a DAG file that connects to it from a subprocess (out of reach
    # of the child's Python audit hook)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2)"
        folder = write(tmp_path / "sneaky", {"sneaky.py": HEAD + "import subprocess\nimport sys\n\n"
                                             f"done = subprocess.run([sys.executable, '-c', {probe!r}])\n"
                                             "reached = 'reached' if done.returncode == 0 else 'unreachable'\n"
                                             f"with DAG(dag_id='network_' + reached, {ARGS}):\n    pass\n"})
        # When it is parsed at publish
        done = publish(stack, airflow_python, "sneaky", "1", folder, "--json")
    # Then the subprocess found no network at all, and the output says how the child was isolated
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["dag_ids"] == ["network_unreachable"]
    assert doc["checked_with"]["network"] == "none: a network namespace of its own (unshare -rn)"


def test_without_a_network_namespace_the_python_guard_still_refuses_top_level_network(
        store: S3Store, airflow_python: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a system that gives no network namespace (forced here), and a listener on the loopback interface
    monkeypatch.setattr(parsing, "network_namespace", lambda: [])
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        folder = write(tmp_path / "direct", {"direct.py": HEAD + "import socket\n\ntry:\n"
                                             f"    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
                                             "    reached = 'reached'\nexcept PermissionError:\n"
                                             "    reached = 'refused'\n"
                                             f"with DAG(dag_id='network_' + reached, {ARGS}):\n    pass\n"})
        # When DAG code connects to it from Python at top level, during the parse at publish
        result = publish_in_process(store, "direct", "1", folder,
                                    checks=Checks(airflow=AirflowPython(airflow_python, "--airflow-python")))
    # Then the child's audit hook refused it, and the output says that this is the guard in place
    assert result.dag_ids == ["network_refused"]
    assert result.checked.checked_with["network"] == "refused by the child's Python audit hook"
