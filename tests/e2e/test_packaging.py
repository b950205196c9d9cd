"""The distribution, installed as a user would into a fresh venv: plain `dagsync` is the CLI alone (no moto,
Powertools or prometheus-client), `dagsync[agent]` adds a working `dagsync-agent`, nothing but the `dagsync`
package lands in site-packages, and `dagsync[airflow]` goes into Airflow 3.3.2's environment with `pip check` clean."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dagsync.local.airflow import AIRFLOW_VERSION, ensure_airflow

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("dagsync", "pyproject.toml", "README.md", "requirements.txt", "agent/requirements.txt")


def run(*cmd: str | Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600)
    if ok:
        assert done.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of what the distribution is built from, so building it writes nothing into the checkout."""
    root = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        src, dst = REPO / name, root / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, dst)
    return root


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("venv")
    run(getattr(sys, "_base_executable", sys.executable), "-m", "venv", path)
    yield path / "bin"


def pip_install(venv: Path, source: Path, spec: str, constraints: str) -> None:
    run(venv / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-c",
        source / constraints, f"{source}{spec}")


def imports(venv: Path, module: str) -> bool:
    return run(venv / "python", "-c", f"import {module}", ok=False).returncode == 0


def test_plain_install_is_the_cli_alone_then_the_agent_extra_adds_the_agent(venv: Path, source: Path) -> None:
    # Given `pip install dagsync` (no extras) in a fresh venv
    pip_install(venv, source, "", "requirements.txt")
    # Then the CLI works, and neither moto, Powertools nor prometheus-client came with it
    assert "publish" in run(venv / "dagsync", "--help").stdout
    for module in ("moto", "aws_lambda_powertools", "prometheus_client", "pydantic_settings"):
        assert not imports(venv, module), f"plain dagsync pulled in {module}"
    # And the agent, without its extra, says what to install instead of a traceback
    missing = run(venv / "dagsync-agent", "--help", ok=False)
    assert missing.returncode == 2 and 'pip install "dagsync[agent]"' in missing.stderr
    # When the agent extra is installed
    pip_install(venv, source, "[agent]", "agent/requirements.txt")
    # Then dagsync-agent works, still without moto or Powertools
    assert "run" in run(venv / "dagsync-agent", "--help").stdout
    assert not imports(venv, "moto") and not imports(venv, "aws_lambda_powertools")


def test_nothing_but_the_dagsync_package_lands_in_site_packages(venv: Path, source: Path) -> None:
    pip_install(venv, source, "", "requirements.txt")
    record = run(venv / "python", "-m", "pip", "show", "--files", "dagsync").stdout
    files = record.split("Files:", 1)[1].split()
    top = {f.split("/", 1)[0] for f in files if not f.startswith("..")}
    assert {t for t in top if not t.endswith(".dist-info")} == {"dagsync"}, top
    # And the parse gate's child, which the publisher runs by path in Airflow's interpreter, is shipped
    assert "dagsync/publish/dagbag_child.py" in files


def test_the_airflow_extra_installs_into_airflows_own_environment_with_pip_check_clean(
    source: Path, tmp_path: Path
) -> None:
    # Given a copy of an environment holding apache-airflow 3.3.2 as Airflow installs it (the tests' cached venv;
    # run through its own python, so pip installs into the copy)
    airflow_venv = tmp_path / "airflow-venv"
    shutil.copytree(ensure_airflow().parents[1], airflow_venv, symlinks=True)
    python = airflow_venv / "bin" / "python"
    run(python, "-m", "pip", "uninstall", "--yes", "--quiet", "dagsync")
    # When `pip install ".[airflow]"` runs there (the agent's pins as constraints)
    run(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-c",
        source / "agent/requirements.txt", f"{source}[airflow]")
    # Then pip finds no conflict with Airflow's own pins, and the bundle imports from site-packages
    assert "No broken requirements found" in run(python, "-m", "pip", "check").stdout
    code = "import dagsync.airflow.bundle as b, airflow; print(airflow.__version__, b.__file__)"
    where = run(python, "-I", "-c", code)  # -I: not the checkout in the current folder
    version, path = where.stdout.split()[-2:]
    assert version == AIRFLOW_VERSION and str(airflow_venv) in path and "site-packages" in path, where.stdout
