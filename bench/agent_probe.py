"""The agent's own sync cycle, timed in a long-running process as the daemon runs it.

`python -m bench.agent_probe DAGS_DIR ENDPOINT BUCKET` reads one command a line on stdin and answers one
JSON line on stdout:
    event  what a change message triggers: sync(full=False), a conditional GET of release.json first
    delta PATH  the same with the change event stored at PATH (its delta applied when it leads on)
    full   what the reconcile timer triggers: sync(full=True); stops after the GET when the volume is quiet
    scan   a full reconcile that scans the volume whatever the watch says (as after a change or drift)
    quit
The Syncer is the daemon's (dagsync.agent.sync.Syncer with the daemon's settings, host status included); only
the loop around it is replaced by stdin, so the figures are the cycle's cost and nothing else.
With BENCH_PROFILE=PREFIX set, each command is profiled with pyinstrument into PREFIX-<n>-<command>.txt;
BENCH_RETENTION_GRACE sets --retention-grace (default the agent's); BENCH_KEEP_VIEWS the release views kept besides
the current one (--keep-views; default the agent's), so a probe reaches in one change the steady state a daemon
reaches after that many releases, where each new view is repaired from the oldest."""

from __future__ import annotations

import gc
import json
import os
import resource
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from bench.common import SIGNER, client
from dagsync.agent.loop import freeze_long_lived
from dagsync.agent.metrics import Metrics
from dagsync.agent.sync import Settings, Syncer
from dagsync.agent.volume import Volume
from dagsync.core.models import ChangeEvent
from dagsync.core.signatures import TrustedKeys
from dagsync.core.store import S3Store


def _profiler() -> Any:
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0005)
    profiler.start()
    return profiler


class GcClock:
    """Seconds spent in the cyclic garbage collector, per generation, since the last take."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self._started = 0.0
        gc.callbacks.append(self._on)

    def _on(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds[info["generation"]] += time.perf_counter() - self._started

    def take(self) -> list[float]:
        out, self.seconds = self.seconds, [0.0, 0.0, 0.0]
        return out


def main(argv: list[str]) -> int:
    dags_dir, endpoint, bucket = Path(argv[0]), argv[1], argv[2]
    who = argv[3] if len(argv) > 3 else "dagsync"
    store = S3Store(client("s3", endpoint, who), bucket)
    grace = float(os.environ.get("BENCH_RETENTION_GRACE", Settings.retention_grace))
    kept = int(os.environ.get("BENCH_KEEP_VIEWS", Settings.keep_views))
    syncer = Syncer(store, Volume(dags_dir), Settings(host="bench-probe", bucket=bucket, retention_grace=grace,
                                                      keep_views=kept),
                    Metrics(), threading.Event(), TrustedKeys([SIGNER.public_key]))
    me = psutil.Process()
    gc_clock = GcClock()
    frozen = False
    profile = os.environ.get("BENCH_PROFILE")
    print(json.dumps({"ready": True}), flush=True)
    for n, line in enumerate(sys.stdin):
        command, _, arg = line.strip().partition(" ")
        if command == "quit":
            break
        if command == "scan":
            syncer._quiet_mark = None
        events = [ChangeEvent.model_validate_json(Path(arg).read_text())] if command == "delta" else []
        profiler = _profiler() if profile else None
        gc_clock.take()
        cpu0, start = me.cpu_times(), time.perf_counter()
        result = syncer.sync(full=command in ("full", "scan"), events=events)
        elapsed = time.perf_counter() - start
        cpu1 = me.cpu_times()
        if profiler is not None:
            profiler.stop()
            Path(f"{profile}-{n}-{command}.txt").write_text(profiler.output_text(show_all=False))
        applied = result.applied
        if command == "full" and not frozen and result.outcome != "error":  # as the daemon's loop does, untimed
            freeze_long_lived()
            frozen = True
        print(json.dumps({
            "seconds": elapsed, "outcome": result.outcome, "error": result.error, "sequence": result.sequence,
            "fetched": len(applied.fetched) if applied else 0, "flipped": len(applied.flipped) if applied else 0,
            "cpu_seconds": (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system),
            "rss_bytes": me.memory_info().rss,
            "gc_seconds": gc_clock.take(),  # per generation: what the collector took of `seconds`
            "max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
