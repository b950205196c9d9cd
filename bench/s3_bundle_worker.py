"""Airflow 3's S3DagBundle, driven as Airflow's DAG processor drives it. Runs under the Airflow venv's python.

    python s3_bundle_worker.py BUCKET PREFIX CONN_ID
reads commands on stdin, answers one JSON line each:
    init     S3DagBundle.initialize()  (bucket and prefix checks, then refresh(): the first download)
    refresh  S3DagBundle.refresh()     (what the DAG processor calls every refresh_interval)
    quit
AIRFLOW_HOME and AIRFLOW_CONN_<CONN_ID> (with extra.endpoint_url) come from the environment.
Deliberately imports nothing from dagsync: this file runs in another venv."""

from __future__ import annotations

import json
import sys
import time

started = time.perf_counter()
from airflow.providers.amazon.aws.bundles.s3 import S3DagBundle  # noqa: E402

import_seconds = time.perf_counter() - started


def main(argv: list[str]) -> int:
    bucket, prefix, conn_id = argv
    bundle = S3DagBundle(name="bench", aws_conn_id=conn_id, bucket_name=bucket, prefix=prefix, refresh_interval=300)
    print(json.dumps({"ready": True, "import_seconds": import_seconds, "path": str(bundle.path)}), flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "quit":
            break
        start = time.perf_counter()
        if command == "init":
            bundle.initialize()
        elif command == "refresh":
            bundle.refresh()
        else:
            print(json.dumps({"error": f"unknown command {command!r}"}), flush=True)
            continue
        print(json.dumps({"seconds": time.perf_counter() - start}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
