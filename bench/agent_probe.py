"""The agent's own sync cycle, timed in a long-running process as the daemon runs it.

`python -m bench.agent_probe DAGS_DIR ENDPOINT BUCKET` reads one command a line on stdin and answers one
JSON line on stdout:
    event  what a change message triggers: sync(full=False), a conditional GET of release.json first
    full   what the reconcile timer triggers: sync(full=True), which also scans the volume
    quit
The Syncer is the daemon's (dagsync.agent.sync.Syncer with the daemon's settings, host status included); only
the loop around it is replaced by stdin, so the figures are the cycle's cost and nothing else.
With BENCH_PROFILE=PREFIX set, each command is profiled with pyinstrument into PREFIX-<n>-<command>.txt."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from bench.common import SIGNER, client
from dagsync.agent.metrics import Metrics
from dagsync.agent.sync import Settings, Syncer
from dagsync.agent.volume import Volume
from dagsync.core.signatures import TrustedKeys
from dagsync.core.store import S3Store


def _profiler() -> Any:
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0005)
    profiler.start()
    return profiler


def main(argv: list[str]) -> int:
    dags_dir, endpoint, bucket = Path(argv[0]), argv[1], argv[2]
    who = argv[3] if len(argv) > 3 else "dagsync"
    store = S3Store(client("s3", endpoint, who), bucket)
    syncer = Syncer(store, Volume(dags_dir), Settings(host="bench-probe", bucket=bucket), Metrics(), threading.Event(),
                    TrustedKeys([SIGNER.public_key]))
    me = psutil.Process()
    profile = os.environ.get("BENCH_PROFILE")
    print(json.dumps({"ready": True}), flush=True)
    for n, line in enumerate(sys.stdin):
        command = line.strip()
        if command == "quit":
            break
        profiler = _profiler() if profile else None
        cpu0, start = me.cpu_times(), time.perf_counter()
        result = syncer.sync(full=command == "full")
        elapsed = time.perf_counter() - start
        cpu1 = me.cpu_times()
        if profiler is not None:
            profiler.stop()
            Path(f"{profile}-{n}-{command}.txt").write_text(profiler.output_text(show_all=False))
        applied = result.applied
        print(json.dumps({
            "seconds": elapsed, "outcome": result.outcome, "error": result.error, "sequence": result.sequence,
            "fetched": len(applied.fetched) if applied else 0, "flipped": len(applied.flipped) if applied else 0,
            "cpu_seconds": (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system),
            "rss_bytes": me.memory_info().rss,
        }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
