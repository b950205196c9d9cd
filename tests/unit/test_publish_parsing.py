"""Running Airflow's DagBag at publish, without Airflow: which interpreter is chosen, the child's environment (an
allow-list: no credential of the publisher's gets through), and an interpreter that cannot import Airflow refused
clearly before anything is uploaded. Real Airflow parses in tests/e2e/test_parse_gate.py."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from dagsync.core import keys
from dagsync.publish.content import AirflowUnavailable, Checks
from dagsync.publish.parsing import AirflowPython, ParseFailed, child_env, find_airflow_python
from dagsync.publish.publisher import publish
from tests.support.projects import EXAMPLES
from tests.support.store import FakeStore

PUBLISHER_ENV = {
    "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TZ": "UTC", "HOME": "/home/ci",
    "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "s3cr3t", "AWS_SESSION_TOKEN": "token",
    "AWS_PROFILE": "prod", "AWS_SHARED_CREDENTIALS_FILE": "/home/ci/.aws/credentials",
    "AWS_CONFIG_FILE": "/home/ci/.aws/config", "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://169.254.170.23/v1/creds",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/abc", "AWS_CONTAINER_AUTHORIZATION_TOKEN": "t",
    "AWS_WEB_IDENTITY_TOKEN_FILE": "/var/run/secrets/token", "AWS_ROLE_ARN": "arn:aws:iam::1:role/ci",
    "GITHUB_TOKEN": "ghp_x", "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "oidc", "DB_PASSWORD": "hunter2",
    "AIRFLOW_CONN_WAREHOUSE": "postgres://u:p@db/x", "AIRFLOW_VAR_API_KEY": "k",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql://u:p@db/airflow",
    "AIRFLOW__CORE__DAG_IGNORE_FILE_SYNTAX_CMD": "cat /etc/shadow",
    "AIRFLOW__CORE__DAG_IGNORE_FILE_SYNTAX": "regexp", "AIRFLOW__CORE__DAG_DISCOVERY_SAFE_MODE": "False",
    "DAGSYNC_BUCKET": "b", "PYTHONPATH": "/home/ci/src", "VIRTUAL_ENV": "/home/ci/.venv", "SSH_AUTH_SOCK": "/tmp/a",
}


def test_the_child_environment_is_an_allow_list_with_a_scratch_home(tmp_path: Path) -> None:
    # Given a publisher environment full of credentials, as CI runners have
    # When the child's environment is built
    env = child_env(PUBLISHER_ENV, tmp_path)
    # Then only the locale, PATH and the Airflow settings that change which files are parsed get through
    passed = {k: v for k, v in env.items() if k in PUBLISHER_ENV and v == PUBLISHER_ENV[k]}
    assert passed == {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TZ": "UTC",
                      "AIRFLOW__CORE__DAG_IGNORE_FILE_SYNTAX": "regexp",
                      "AIRFLOW__CORE__DAG_DISCOVERY_SAFE_MODE": "False"}
    # And HOME (so ~/.aws), TMPDIR and AIRFLOW_HOME are the scratch folder's; instance metadata is off for botocore
    assert env["HOME"] == str(tmp_path / "home") and env["AIRFLOW_HOME"] == str(tmp_path / "airflow")
    assert env["TMPDIR"] == str(tmp_path / "tmp") and env["AIRFLOW__CORE__DAGS_FOLDER"] == str(tmp_path / "dags")
    assert env["AWS_EC2_METADATA_DISABLED"] == "true"
    # And no value of the publisher's that could be a secret is anywhere in it
    secrets = {v for k, v in PUBLISHER_ENV.items() if k not in passed}
    assert not secrets & set(env.values())
    assert not [k for k in env if k.startswith(("AWS_ACCESS", "AWS_SECRET", "AWS_SESSION", "AWS_CONTAINER",
                                                "AWS_WEB", "AWS_PROFILE", "AWS_ROLE", "AIRFLOW_CONN", "AIRFLOW_VAR"))]


def test_the_flag_wins_over_the_environment_which_wins_over_this_interpreter(tmp_path: Path) -> None:
    flag, env = tmp_path / "flag-python", tmp_path / "env-python"
    for exe in (flag, env):
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
    environ = {"DAGSYNC_AIRFLOW_PYTHON": str(env)}
    assert find_airflow_python(str(flag), environ) == AirflowPython(flag, "--airflow-python")
    assert find_airflow_python(None, environ) == AirflowPython(env, "$DAGSYNC_AIRFLOW_PYTHON")
    assert find_airflow_python(None, {}, importable=lambda: True) == AirflowPython(Path(sys.executable),
                                                                                  "this interpreter")
    # And with none of them, the ast checks only
    assert find_airflow_python(None, {}, importable=lambda: False) is None


def test_a_relative_interpreter_path_is_made_absolute_without_following_its_link(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a venv-style python: a symbolic link whose own location is what makes it that venv's
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    (tmp_path / "venv" / "bin" / "python").symlink_to(sys.executable)
    monkeypatch.chdir(tmp_path)
    found = find_airflow_python("venv/bin/python", {})
    assert found is not None and found.path == tmp_path / "venv" / "bin" / "python"


def test_an_interpreter_that_is_not_there_is_named_in_the_error(tmp_path: Path) -> None:
    with pytest.raises(ParseFailed, match=r"--airflow-python .*/nope: not an executable file"):
        find_airflow_python(str(tmp_path / "nope"), {})
    with pytest.raises(ParseFailed, match=r"\$DAGSYNC_AIRFLOW_PYTHON .*: not an executable file"):
        find_airflow_python(None, {"DAGSYNC_AIRFLOW_PYTHON": str(tmp_path)})


@pytest.mark.skipif(os.name != "posix", reason="the child forks")
def test_an_interpreter_without_airflow_is_refused_and_nothing_is_uploaded(store: FakeStore) -> None:
    # Given an interpreter that cannot import airflow (this test venv's own)
    python = AirflowPython(Path(sys.executable), "--airflow-python")
    # When a project is published with it
    with pytest.raises(AirflowUnavailable, match=r"cannot parse with Airflow: .*cannot import Airflow's DagBag: "
                                                 r"ModuleNotFoundError: No module named 'airflow'"):
        publish(store, "sales", "1.0.0", EXAMPLES / "sales", checks=Checks(airflow=python))
    # Then nothing was written: neither the archive nor the catalog
    assert store.puts == []
    assert keys.archive_key("sales", "1.0.0") not in store.objects
