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

from bench.dataset import build, put_dagsync, put_manifest
from dagsync.core import keys
from dagsync.core.aws import AwsSettings
from dagsync.core.documents import read_catalog, read_release
from dagsync.core.kms import KmsSigner, create_signing_key
from dagsync.core.signatures import TrustedKeys
from dagsync.core.store import S3Store
from dagsync.gate.validator import Validator
from dagsync.publish.publisher import promote

BUCKET = "dagsync-bench"


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


def add_version(store: S3Store, project: str, version: str) -> None:
    """A one-DAG-file archive and its catalog entry, written straight to the bucket (set-up, not measured)."""
    def put(key: str, body: bytes) -> None:
        store.put(key, body)

    put_dagsync(put, build(project, version, files_per_project=1), read_catalog(store, project))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=1000)
    args = parser.parse_args()
    with mock_aws():
        client = AwsSettings(region="us-east-1").client("s3")
        client.create_bucket(Bucket=BUCKET)
        store = S3Store(client, BUCKET)
        start = time.perf_counter()
        live = {f"p{i:04d}": "1" for i in range(args.projects)}
        names = list(live)
        for name in names:
            add_version(store, name, "1")
        put_manifest(client, BUCKET, live)
        print(f"setup: {args.projects} projects catalogued in {time.perf_counter() - start:.1f}s")
        counter = Counting(client)
        # Signed as in AWS: KMS (moto's, in this process) signs every root; the validator trusts that key only.
        kms_client = AwsSettings(region="us-east-1").client("kms")
        signer = KmsSigner(kms_client, create_signing_key(kms_client, "alias/bench-release-signing", "bench"))
        validator = Validator(store, on_release=lambda _: None, signer=signer,
                              verifier=TrustedKeys([signer.public_key]))
        sizes: list[int] = []
        measure(f"cold: all {args.projects} new", validator, counter, sizes, store)
        measure("no-op: manifest unchanged", validator, counter, sizes, store)
        for label, changed in (("one", [names[3]]), ("two", [names[5], names[7]])):
            for name in changed:
                add_version(store, name, "2")
                live[name] = "2"
            put_manifest(client, BUCKET, live)
            measure(f"{label} of {args.projects} changed", validator, counter, sizes, store)
        # The publisher's side of one change: promote = read the catalog, then manifest.yaml read-modify-write.
        add_version(store, names[9], "2")
        counter.take()
        start = time.perf_counter()
        change = promote(store, names[9], "2")
        elapsed, ops = time.perf_counter() - start, counter.take()
        print(f"{'publisher: promote one of ' + str(args.projects):<34} {'accepted' if change.changed else 'noop':<9} "
              f"changed=1     requests={sum(ops.values()):<5} ({', '.join(f'{k} {v}' for k, v in sorted(ops.items()))})"
              f"  {elapsed * 1000:8.1f} ms")
        release, _ = read_release(store)
        assert release is not None
        print(f"release.json: {sizes[-1]} bytes for {len(release.projects)} projects (sequence {release.sequence})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
