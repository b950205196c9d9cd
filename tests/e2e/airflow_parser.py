"""Run by the Airflow venv's python (never by pytest): parse a DAG folder with Airflow's own DagBag and print
one JSON line per parse: {"dags": {dag_id: fileloc}, "files": [...], "errors": {...}, "fatal": str|null}.

    python airflow_parser.py DAGS_DIR                 one parse
    python airflow_parser.py DAGS_DIR --until FILE    parse in a loop until FILE exists
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

MARK = "DAGSYNC-PARSE "  # Airflow logs to stdout too: our lines carry this prefix


def _forget_modules(dags: str) -> None:
    """Drop modules imported from the DAG folder, so every parse reads the files on disk again."""
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None) or ""
        if path.startswith(dags + os.sep):
            del sys.modules[name]


def links(dags: str) -> dict[str, str]:
    out = {}
    for entry in os.scandir(dags):
        try:
            out[entry.name] = os.readlink(entry.path)
        except OSError:
            continue
    return out


def parse(dags: str) -> dict[str, Any]:
    from airflow.dag_processing.dagbag import DagBag

    _forget_modules(dags)
    before = links(dags)
    try:
        bag = DagBag(dag_folder=dags)
    except Exception as exc:  # e.g. "Detected recursive loop": the whole folder fails
        return {"dags": {}, "files": [], "errors": {}, "fatal": f"{type(exc).__name__}: {exc}"}
    return {
        "dags": {dag_id: dag.fileloc for dag_id, dag in bag.dags.items()},
        "files": sorted(stat.file for stat in bag.dagbag_stats),
        "errors": {str(k): str(v)[-2000:] for k, v in bag.import_errors.items()},
        "fatal": None,
        # each project's link before and after the parse: a flip in between means this parse straddled it
        "links_before": before,
        "links_after": links(dags),
    }


def main() -> int:
    dags = os.path.abspath(sys.argv[1])
    sys.path.insert(0, dags)  # as Airflow does with its DAGS_FOLDER: projects import their own packages
    until = sys.argv[3] if len(sys.argv) > 3 and sys.argv[2] == "--until" else None
    while True:
        print(MARK + json.dumps(parse(dags)), flush=True)
        if until is None or os.path.exists(until):
            return 0


if __name__ == "__main__":
    sys.exit(main())
