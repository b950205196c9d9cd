"""The parse gate's cost: `publish` of one project with Airflow's DagBag against today's publish (ast only), against
moto in-process. Prints figures; asserts nothing about time.

    .venv/bin/python -m bench.parse_gate [--files 10] [--repeats 5] [--airflow-python PATH] [--out parse_gate]

The target (issue 14): publishing with Airflow costs at most the parse time (the sum of the per-file parse times
Airflow took, as recorded in the catalog) plus 1 s over today's publish. Runs alternate between the two, each a
new version of the same content; one warm-up run of each is not counted. The time the parse child took to import
Airflow (it starts before the archive is built) is reported apart: it is most of what the parse costs beyond the
files themselves. A fresh `python -c "import airflow..."` (to its exit) is timed too, for comparison."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from moto import mock_aws

from bench.common import describe, tool_env, write_result
from bench.dataset import project_files
from bench.tools import AIRFLOW_PY
from dagsync.core.aws import AwsSettings
from dagsync.core.store import S3Store
from dagsync.publish.content import AST_ONLY, Checks
from dagsync.publish.parsing import AirflowPython, child_env
from dagsync.publish.publisher import publish

BUCKET = "dagsync-bench"
PROJECT = "p0000"
IMPORT = "import airflow; from airflow.dag_processing.dagbag import DagBag"


def import_seconds(python: Path, work: Path) -> float:
    """Importing Airflow's DagBag in a fresh process, in the environment the parse child gets."""
    for sub in ("home", "tmp", "airflow", "dags"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    subprocess.run([str(python), "-I", "-c", IMPORT], env=child_env(tool_env("bench"), work), check=True,
                   capture_output=True)
    return time.perf_counter() - start


def run(python: Path, files: int, repeats: int, work: Path) -> dict[str, Any]:
    source = work / PROJECT
    source.mkdir()
    for name, data in project_files(PROJECT, "1", files).items():
        (source / name).write_bytes(data)
    checks = Checks(airflow=AirflowPython(python, "--airflow-python"))
    ast_s: list[float] = []
    airflow_s: list[float] = []
    parse_s: list[float] = []
    imports: list[float] = []
    startups: list[float] = []
    version = airflow_version = ""
    with mock_aws():
        client = AwsSettings(region="us-east-1").client("s3")
        client.create_bucket(Bucket=BUCKET)
        store = S3Store(client, BUCKET)
        for i in range(repeats + 1):  # run 0 warms both up
            start = time.perf_counter()
            publish(store, PROJECT, f"ast-{i}", source, published_by="bench", checks=AST_ONLY)
            ast_t = time.perf_counter() - start
            start = time.perf_counter()
            result = publish(store, PROJECT, f"airflow-{i}", source, published_by="bench", checks=checks)
            airflow_t = time.perf_counter() - start
            parse = result.checked.parse
            assert parse is not None and len(parse.files) == files, result.checked.checked_with
            version, airflow_version = f"airflow-{i}", parse.airflow_version
            imported = import_seconds(python, work / f"import-{i}")
            startup = float(result.checked.checked_with["airflow_startup_seconds"])
            if i:
                startups.append(startup)
                ast_s.append(ast_t)
                airflow_s.append(airflow_t)
                parse_s.append(parse.seconds)
                imports.append(imported)
            print(f"  run {i}{' (warm-up)' if not i else ''}: ast {ast_t * 1000:,.0f} ms, with Airflow "
                  f"{airflow_t * 1000:,.0f} ms (Airflow ready after {startup * 1000:,.0f} ms, parse "
                  f"{parse.seconds * 1000:,.0f} ms), a fresh process importing Airflow {imported * 1000:,.0f} ms",
                  flush=True)
    over = [a - t - p for a, t, p in zip(airflow_s, ast_s, parse_s, strict=True)]
    return {
        "files": files, "repeats": repeats, "python": str(python), "airflow_version": airflow_version,
        "last_version": version,
        "ast_seconds": describe(ast_s), "airflow_seconds": describe(airflow_s), "parse_seconds": describe(parse_s),
        "over_seconds": describe(over), "import_seconds": describe(imports), "startup_seconds": describe(startups),
        "over_minus_startup_seconds": describe([o - s for o, s in zip(over, startups, strict=True)]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10, help="DAG files in the project (about 3 KB each)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--airflow-python", type=Path, default=AIRFLOW_PY,
                        help="an interpreter with apache-airflow (default: bench/setup.sh's)")
    parser.add_argument("--out", default="parse_gate")
    args = parser.parse_args(argv)
    python = Path(args.airflow_python).absolute()
    print(f"parse gate: {args.files} DAG files, {args.repeats} runs each (+1 warm-up), {python}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="dagsync-bench-parse-"))
    try:
        result = run(python, args.files, args.repeats, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def line(label: str, key: str) -> None:
        d = result[key]
        print(f"  {label:<44} median {d['median'] * 1000:8,.0f} ms  ({d['min'] * 1000:,.0f}-"
              f"{d['max'] * 1000:,.0f})", flush=True)

    line("today's publish (ast only)", "ast_seconds")
    line(f"publish with Airflow {result['airflow_version']}", "airflow_seconds")
    line("parse time (sum of the files' parse times)", "parse_seconds")
    line("with Airflow - today's - parse time", "over_seconds")
    line("  of which: the child importing Airflow", "startup_seconds")
    line("  and the rest (dagsync's own)", "over_minus_startup_seconds")
    line("a fresh process importing Airflow, to exit", "import_seconds")
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
