"""The validator at 1,000 projects: requests and time for one changed project (and for the cold start and
a no-op), against moto in-process. Prints figures; asserts nothing about time.

    .venv/bin/python bench/validator_scale.py [--projects 1000]

Requests are counted with a botocore event hook (`before-send.s3`), so they are exactly what S3 would see."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")

from moto import mock_aws

from dagsync.core import keys
from dagsync.core.aws import AwsSettings
from dagsync.core.documents import read_release
from dagsync.core.store import S3Store
from dagsync.gate.validator import Validator
from tests.integration.gate_helpers import dag, set_manifest, tar_gz, write_direct


class Counting:
    def __init__(self, client: Any) -> None:
        self.ops: Counter[str] = Counter()
        client.meta.events.register("before-send.s3", self._count)

    def _count(self, request: Any, **_: Any) -> None:
        self.ops[request.method] += 1

    def take(self) -> Counter[str]:
        out, self.ops = self.ops, Counter()
        return out


def measure(label: str, validator: Validator, counter: Counting, release_key_size: list[int], store: S3Store) -> None:
    counter.take()
    start = time.perf_counter()
    outcome = validator.run()
    elapsed = time.perf_counter() - start
    ops = counter.take()
    blob = store.get(keys.RELEASE_KEY)
    counter.take()
    release_key_size.append(len(blob.data) if blob else 0)
    print(f"{label:<34} {outcome.status:<9} changed={len(outcome.changed):<5} requests={sum(ops.values()):<5} "
          f"({', '.join(f'{k} {v}' for k, v in sorted(ops.items()))})  {elapsed * 1000:8.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=1000)
    args = parser.parse_args()
    with mock_aws():
        client = AwsSettings(region="us-east-1").client("s3")
        client.create_bucket(Bucket="dagsync-bench")
        store = S3Store(client, "dagsync-bench")
        start = time.perf_counter()
        names = [f"p{i:04d}" for i in range(args.projects)]
        for name in names:
            write_direct(store, name, "1", tar_gz({"dag.py": dag(f"{name}_daily")}), promote=False)
        set_manifest(store, dict.fromkeys(names, "1"))
        print(f"setup: {args.projects} projects catalogued in {time.perf_counter() - start:.1f}s")
        counter = Counting(client)
        validator = Validator(store, on_release=lambda _: None)
        sizes: list[int] = []
        measure(f"cold: all {args.projects} new", validator, counter, sizes, store)
        measure("no-op: manifest unchanged", validator, counter, sizes, store)
        write_direct(store, names[3], "2", tar_gz({"dag.py": dag(f"{names[3]}_daily")}))
        measure(f"one of {args.projects} changed", validator, counter, sizes, store)
        write_direct(store, names[5], "2", tar_gz({"dag.py": dag(f"{names[5]}_daily")}), promote=False)
        write_direct(store, names[7], "2", tar_gz({"dag.py": dag(f"{names[7]}_daily")}), promote=False)
        set_manifest(store, {names[5]: "2", names[7]: "2"})
        measure(f"two of {args.projects} changed", validator, counter, sizes, store)
        release, _ = read_release(store)
        assert release is not None
        print(f"release.json: {sizes[-1]} bytes for {len(release.projects)} projects (sequence {release.sequence})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
