"""What verifying a release costs a host: one signature check of the root plus the sha256 of every shard it names.
Two releases of the same projects: the next release after one change (the usual case) and the first release of a
bucket or chain, whose root lists every project in `changes` (the signature covers that list too).

    python -m bench.verify_release [--projects 10000] [--repeats 200] [--out verify_release]

The release is built in memory with dagsync.core.releases (the validator's own code: realistic entries, 256 shards
at most) and signed with an ECDSA P-256 key, as KMS signs it; the check is the one every consumer runs
(dagsync.core.signatures.TrustedKeys, given the root's stored bytes as dagsync.core.releases.read_root does).
No I/O: the host has the bytes already; this is the CPU on top of fetching
them. Parsing the shards into models, which the agent also does, is measured separately for context. Prints
figures; asserts nothing about time."""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bench.common import SIGNER, machine, write_result
from dagsync.core import keys, releases
from dagsync.core.models import Chain, ManifestWrite, ReleasedProject
from dagsync.core.signatures import TrustedKeys

TARGET_MS = 5.0


def entry(i: int) -> ReleasedProject:
    name = f"team-{i:05d}"
    return ReleasedProject(version="2026.11.22-1a2b3c4d", archive_key=keys.archive_key(name, "2026.11.22-1a2b3c4d"),
                           sha256=hashlib.sha256(name.encode()).hexdigest(), size=48_213, files=17,
                           uncompressed_size=203_518, dag_ids=[f"{name}_daily", f"{name}_hourly"])


def build(projects: int) -> dict[str, tuple[bytes, dict[str, bytes]]]:
    """Two releases of `projects` projects, each as a host holds it: the signed root's stored bytes and
    every shard it names (digest -> bytes). "first": the first release of a bucket (or of a new chain), whose
    `changes` lists every project; "next": the release after it with one project changed, as releases usually are."""
    now = datetime(2026, 11, 22, tzinfo=UTC)
    chain, manifest = Chain(id="b" * 32, created_at=now), ManifestWrite(etag='"bench"')
    before = {f"team-{i:05d}": entry(i) for i in range(projects)}
    first = releases.compose(sequence=1, chain=chain, now=now, after=before, manifest=manifest)
    after = {**before, "team-00003": entry(3).model_copy(update={"version": "2026.11.23-5e6f7a8b"})}
    nxt = releases.compose(sequence=2, chain=chain, now=now, after=after, manifest=manifest, before=before,
                           table=first.root.shards)
    shards = {**first.shards, **nxt.shards}
    return {name: (releases.encode_root(made.root, SIGNER), {d: shards[d] for d in made.root.shards.values()})
            for name, made in (("first", first), ("next", nxt))}


def timed(fn: Callable[[], object], repeats: int) -> dict[str, float]:
    fn()  # warm
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return {"median_ms": statistics.median(samples) * 1000, "min_ms": min(samples) * 1000,
            "max_ms": max(samples) * 1000, "n": repeats}


def measure(stored: bytes, shards: dict[str, bytes], repeats: int) -> dict[str, Any]:
    verifier = TrustedKeys([SIGNER.public_key])
    root = json.loads(stored)  # parsing is not verifying: the host parses the root whatever it does next
    expected = dict(root["shards"])

    def signature() -> None:
        verifier.verify(root, stored=stored)

    def digests() -> None:
        table = {releases.digest(data) for data in shards.values()}
        assert table == set(expected.values())

    def both() -> None:
        signature()
        digests()

    def parse() -> None:
        for key, data in shards.items():
            releases.parse_shard(data, key)

    return {
        "changes": len(root["changes"]), "shards": len(shards), "root_bytes": len(stored),
        "signature_encoding_again": timed(lambda: verifier.verify(root), max(3, repeats // 5)),
        "shard_bytes": sum(len(d) for d in shards.values()),
        "signature": timed(signature, repeats), "shard_sha256": timed(digests, repeats),
        "verify": timed(both, repeats), "parse_shards": timed(parse, max(3, repeats // 20)),
    }


def run(projects: int, repeats: int) -> dict[str, Any]:
    releases_ = build(projects)
    return {"projects": projects, "target_ms": TARGET_MS, "machine": machine(),
            "releases": {name: measure(stored, shards, repeats) for name, (stored, shards) in releases_.items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--out", default="verify_release")
    args = parser.parse_args(argv)
    result = run(args.projects, args.repeats)
    for name, r in result["releases"].items():
        v, s, d, p = r["verify"], r["signature"], r["shard_sha256"], r["parse_shards"]
        print(f"{name} release of {result['projects']:,} projects ({r['changes']:,} in `changes`): {r['shards']} "
              f"shards ({r['shard_bytes'] / 1e6:.1f} MB), root {r['root_bytes'] / 1e3:.1f} KB", flush=True)
        print(f"  verify (signature + every shard's sha256): median {v['median_ms']:.2f} ms (min {v['min_ms']:.2f}, "
              f"max {v['max_ms']:.2f}, n {v['n']}); target <= {TARGET_MS:g} ms", flush=True)
        again = r["signature_encoding_again"]["median_ms"]
        print(f"  signature {s['median_ms']:.3f} ms (on the stored bytes; {again:.2f} ms encoding the root again), "
              f"shard sha256 {d['median_ms']:.2f} ms; parsing the shards into models (for context) "
              f"{p['median_ms']:.0f} ms", flush=True)
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
