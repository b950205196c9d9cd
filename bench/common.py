"""Small helpers shared by the benchmark scenarios: clients, statistics, results, the machine."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from cryptography.hazmat.primitives.asymmetric import ec

from dagsync.core.signatures import LocalKeySigner, TrustedKeys, public_pem
from dagsync.core.store import ObjectStore
from dagsync.gate.validator import Validator

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".bench-cache"
RESULTS = CACHE / "results"
REGION = "us-east-1"
BUCKET = "dagsync-bench"


# Releases the benchmarks write themselves (without the local stack's KMS key) are signed with this fixed key,
# derived from a constant so that every bench process has it: for benchmarks only, never trusted anywhere else.
SIGNER = LocalKeySigner(ec.derive_private_key(int.from_bytes(hashlib.sha256(b"dagsync bench").digest(), "big"),
                                              ec.SECP256R1()))


def trusted_keys_file() -> Path:
    """SIGNER's public key as a PEM file, for the agents the benchmarks start (--trusted-keys)."""
    path = CACHE / "bench-release-signing.pem"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(public_pem(SIGNER.public_key))
    return path


def validator(store: ObjectStore) -> Validator:
    """The real validator, signing with SIGNER, announcing nothing, recording no history."""
    return Validator(store, on_release=lambda _: None, record_history=False, signer=SIGNER,
                     verifier=TrustedKeys([SIGNER.public_key]))


def client(service: str, endpoint_url: str, who: str, **config: Any) -> Any:
    """A boto3 client that signs with access key `who`, so the counting server can attribute its requests."""
    return boto3.session.Session().client(
        service, region_name=REGION, endpoint_url=endpoint_url, aws_access_key_id=who,
        aws_secret_access_key="bench", config=Config(retries={"max_attempts": 3, "mode": "standard"},
                                                     max_pool_connections=16, **config))


def tool_env(who: str, **extra: str) -> dict[str, str]:
    """Environment for a child process: its own access key, no real AWS profile, no dagsync settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DAGSYNC_"))}
    env.update({"AWS_ACCESS_KEY_ID": who, "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": REGION,
                "AWS_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true"})
    env.update(extra)
    return env


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of a non-empty sample."""
    s = sorted(values)
    if len(s) == 1:
        return s[0]
    pos = (len(s) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def describe(values: Sequence[float]) -> dict[str, float]:
    """Median and spread of repeated measurements."""
    return {
        "n": len(values),
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "stdev": statistics.stdev(values) if len(values) > 1 else 0.0,
    }


def timed_run(cmd: list[str], env: dict[str, str], *, cwd: Path | None = None,
              timeout: float = 900) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return elapsed, proc


def write_result(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=1, sort_keys=True))
    return path


def read_result(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _pkg_version(python: Path, module: str) -> str:
    if not python.exists():
        return "not installed"
    code = f"import importlib.metadata as m; print(m.version({module!r}))"
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    return out.stdout.strip() or "not installed"


def machine() -> dict[str, Any]:
    import psutil

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    me = Path(sys.executable)
    return {
        "cores": os.cpu_count(),
        "load_average": os.getloadavg(),
        "cpu": cpu,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "boto3": _pkg_version(me, "boto3"),
        "moto": _pkg_version(me, "moto"),
        "dagsync": _pkg_version(me, "dagsync"),
        "awscli": _pkg_version(CACHE / "awscli" / "bin" / "python", "awscli"),
        "apache-airflow": _pkg_version(CACHE / "airflow" / "bin" / "python", "apache-airflow"),
        "apache-airflow-providers-amazon": _pkg_version(CACHE / "airflow" / "bin" / "python",
                                                        "apache-airflow-providers-amazon"),
        "airflow boto3": _pkg_version(CACHE / "airflow" / "bin" / "python", "boto3"),
    }
