"""Real Airflow for the tests: the venv under .cache/ that dagsync.local.airflow installs on first use (Airflow
3.3.2 and dagsync[airflow]), and a parser that runs Airflow's DagBag on a folder (airflow_parser.py)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from dagsync.local.airflow import base_env, ensure_airflow

__all__ = ["ensure_airflow", "parse_loop", "parse_once", "read_parses"]

PARSER = Path(__file__).with_name("airflow_parser.py")
MARK = "DAGSYNC-PARSE "


def airflow_env(home: Path, dags: Path) -> dict[str, str]:
    return {**base_env(home), "AIRFLOW__CORE__DAGS_FOLDER": str(dags), "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR"}


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
