"""Profile the agent's cycles at scale with pyinstrument: cold sync, event no-op, full-reconcile no-op, one change.

    python -m bench.profile_agent --projects 1000 --out .bench-cache/profiles/agent

The moto server runs in this process; the agent runs in its own (bench/agent_probe.py with BENCH_PROFILE),
so the profile shows only the agent. Writes one text profile per command next to --out."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from bench import dataset, tools
from bench.common import BUCKET, CACHE, ROOT, client, tool_env, validator
from bench.counting import CountingMotoServer, backend_put
from dagsync.core.store import S3Store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=1000)
    parser.add_argument("--out", default=str(CACHE / "profiles" / "agent"))
    args = parser.parse_args(argv)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    server = CountingMotoServer()
    url = server.start()
    s3 = client("s3", url, "loader")
    s3.create_bucket(Bucket=BUCKET)
    data = dataset.load(s3, BUCKET, backend_put(BUCKET), args.projects)
    with tempfile.TemporaryDirectory(prefix="dagsync-profile-") as tmp:
        env = tool_env("dagsync", PYTHONPATH=str(ROOT), BENCH_PROFILE=args.out)
        worker = tools.Worker([sys.executable, "-m", "bench.agent_probe", str(Path(tmp) / "dags"), url, BUCKET],
                              env, Path(tmp) / "probe.log")
        try:
            for command in ("full", "event", "full", "full"):
                before = server.snapshot()
                answer = worker.ask(command)
                counted = (server.snapshot() - before).for_client("dagsync")
                print(f"{command:6} {answer['seconds'] * 1000:9.1f} ms {counted.requests:5} requests", flush=True)
            dataset.change_one(s3, BUCKET, data, dataset.project_name(1), "1.1.0")
            validator(S3Store(s3, BUCKET)).run()
            answer = worker.ask("event")
            print(f"change {answer['seconds'] * 1000:9.1f} ms", flush=True)
        finally:
            worker.close()
            server.stop()
    print(f"profiles: {args.out}-*.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
