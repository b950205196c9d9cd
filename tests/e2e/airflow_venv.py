"""Real Airflow for the tests, in its own venv under .cache/ (git-ignored by its own .gitignore), created on
first use and reused after. A file lock makes concurrent first uses install it once."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

AIRFLOW_VERSION = "3.3.2"
REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache"
VENV = CACHE / f"airflow-{AIRFLOW_VERSION}"
READY = VENV / ".dagsync-ready"
PARSER = Path(__file__).with_name("airflow_parser.py")
MARK = "DAGSYNC-PARSE "
CHECK = "import airflow; from airflow.dag_processing.dagbag import DagBag; print(airflow.__version__)"


def ensure_airflow() -> Path:
    """The venv's python, with apache-airflow installed (about 20-120 s the first time, then instant)."""
    python = VENV / "bin" / "python"
    if READY.exists():
        return python
    CACHE.mkdir(exist_ok=True)
    (CACHE / ".gitignore").write_text("*\n")
    with open(CACHE / "airflow.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if READY.exists():
            return python
        if not (python.exists() and _works(python)):
            shutil.rmtree(VENV, ignore_errors=True)
            subprocess.run([_base_python(), "-m", "venv", str(VENV)], check=True, timeout=300)
            subprocess.run(
                [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                 f"apache-airflow=={AIRFLOW_VERSION}"],
                check=True, timeout=1200,
            )
        if not _works(python):
            raise RuntimeError(f"apache-airflow {AIRFLOW_VERSION} did not install into {VENV}")
        READY.write_text(AIRFLOW_VERSION + "\n")
    return python


def _base_python() -> str:
    return getattr(sys, "_base_executable", None) or sys.executable


def _works(python: Path) -> bool:
    done = subprocess.run([str(python), "-c", CHECK], capture_output=True, text=True, timeout=120,
                          env=airflow_env(CACHE))
    return done.returncode == 0 and done.stdout.strip() == AIRFLOW_VERSION


def airflow_env(home: Path, dags: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHON", "VIRTUAL_ENV"))}
    env.update(AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="False",
               AIRFLOW__LOGGING__LOGGING_LEVEL="ERROR")
    if dags is not None:
        env["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags)
    return env


def parse_once(python: Path, dags: Path, home: Path) -> dict[str, Any]:
    done = subprocess.run([str(python), str(PARSER), str(dags)], capture_output=True, text=True, timeout=300,
                          env=airflow_env(home, dags))
    assert done.returncode == 0, done.stderr[-4000:]
    return read_parses(done.stdout)[-1]


def read_parses(text: str) -> list[dict[str, Any]]:
    """The parser's JSON lines, without whatever Airflow itself logged to stdout in between."""
    return [json.loads(line.removeprefix(MARK)) for line in text.splitlines() if line.startswith(MARK)]


def parse_loop(python: Path, dags: Path, home: Path, stop_file: Path, out: Path) -> subprocess.Popen[bytes]:
    """A parser that keeps parsing until stop_file exists, one JSON line per parse into `out`."""
    return subprocess.Popen([str(python), str(PARSER), str(dags), "--until", str(stop_file)],
                            stdout=out.open("w"), stderr=subprocess.DEVNULL, env=airflow_env(home, dags))
