"""Releases as stored: a signed root and content-addressed shards (dagsync.core.releases)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from dagsync.core import history, keys, releases
from dagsync.core.models import ManifestWrite, ReleasedProject, Signature
from dagsync.core.serde import DocumentError, canonical
from tests.support.store import FakeStore

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def entry(project: str, version: str) -> ReleasedProject:
    sha = (project + version).encode().hex().ljust(64, "0")[:64]
    return ReleasedProject(version=version, archive_key=keys.archive_key(project, version), sha256=sha, size=10,
                           files=1, uncompressed_size=20, dag_ids=[f"{project}_dag"])


def projects(count: int, version: str = "1") -> dict[str, ReleasedProject]:
    return {f"p{i:04d}": entry(f"p{i:04d}", version) for i in range(count)}


def release(store: FakeStore, after: dict[str, ReleasedProject], *, signer: releases.Signer | None = None
            ) -> releases.Draft:
    """Draft and write the release after the current one, as the validator does."""
    previous = releases.read_root(store, releases.AcceptUnsigned())
    before = releases.load_shards(store, previous.root, releases.ShardCache()) if previous else {}
    made = releases.draft(previous, before, after, manifest=ManifestWrite(etag='"m"'), now=NOW)
    releases.write(store, made, signer, previous.etag if previous else None)
    return made


def test_a_release_reads_back_whole_and_its_history_entry_has_the_same_bytes(store: FakeStore) -> None:
    # Given a release of 300 projects
    made = release(store, projects(300))
    # When it is read back
    got = releases.read_release(store, releases.AcceptUnsigned())
    # Then every entry is there, and releases/1.json holds exactly release.json's bytes
    assert got is not None and got.sequence == 1 and got.projects == projects(300)
    assert store.objects[keys.release_key(1)] == store.objects[keys.RELEASE_KEY]
    # And the stored root is its own canonical form (what a signature covers is what is stored)
    raw = json.loads(store.objects[keys.RELEASE_KEY])
    assert canonical(raw) == store.objects[keys.RELEASE_KEY]
    assert made.root.project_count == 300 and len(made.root.shards) == len(made.shards) <= 256


def test_one_change_writes_one_shard_and_keeps_every_other_digest(store: FakeStore) -> None:
    # Given a release of 1,000 projects
    first = release(store, projects(1000))
    # When one project changes
    after = {**projects(1000), "p0042": entry("p0042", "2")}
    second = release(store, after)
    # Then exactly one new shard was written, and only its digest moved in the table
    assert len(second.shards) == 1
    moved = {s for s, d in second.root.shards.items() if first.root.shards[s] != d}
    assert moved == {releases.shard_of("p0042")}
    assert second.root.changes == {"p0042": "2"} and second.root.sequence == 2
    assert second.root.chain == first.root.chain


def test_retiring_the_last_project_of_a_shard_drops_the_shard(store: FakeStore) -> None:
    release(store, {"alpha": entry("alpha", "1"), "beta": entry("beta", "1")})
    second = release(store, {"alpha": entry("alpha", "1")})
    assert releases.shard_of("beta") not in second.root.shards or releases.shard_of("beta") == releases.shard_of(
        "alpha")
    assert second.root.changes == {"beta": None} and second.root.project_count == 1
    got = releases.read_release(store, releases.AcceptUnsigned())
    assert got is not None and set(got.projects) == {"alpha"}


def test_a_shard_whose_bytes_do_not_match_its_digest_is_refused(store: FakeStore) -> None:
    made = release(store, projects(5))
    key = next(iter(made.shards))
    forged = json.loads(store.objects[keys.shard_key(key)])
    name = next(iter(forged["projects"]))
    forged["projects"][name]["sha256"] = "f" * 64
    store.objects[keys.shard_key(key)] = canonical(forged)
    with pytest.raises(releases.UntrustedRelease, match="not the root's"):
        releases.read_release(store, releases.AcceptUnsigned())


def test_a_shard_holding_a_project_of_another_shard_is_refused(store: FakeStore) -> None:
    # Given a root whose shard table names, for one shard id, a shard that holds a project of another shard
    made = release(store, {"alpha": entry("alpha", "1")})
    stray = releases.encode_shard({"alpha": entry("alpha", "1")})
    wrong = next(f"{i:02x}" for i in range(256) if f"{i:02x}" != releases.shard_of("alpha"))
    raw = json.loads(store.objects[keys.RELEASE_KEY])
    raw["shards"] = {wrong: releases.digest(stray)}
    store.objects[keys.RELEASE_KEY] = canonical(raw)
    assert made.root.project_count == 1
    with pytest.raises(releases.UntrustedRelease, match="belongs in shard"):
        releases.read_release(store, releases.AcceptUnsigned())


def test_a_host_holds_lean_entries_and_gets_them_back_in_full(store: FakeStore) -> None:
    # Given a release of 300 projects, read through a host's cache and through a plain one
    made = release(store, projects(300))
    lean, plain = releases.HeldShards(), releases.ShardCache()
    held = releases.load_shards(store, made.root, lean)
    assert releases.load_shards(store, made.root, plain) == projects(300)
    # Then the host holds of each entry what it fetches, checks and links by, as the release has it
    fields = ("version", "sha256", "size", "files", "archive_key", "tree_name")
    assert {n: tuple(getattr(e, f) for f in fields) for n, e in held.items()} == {
        n: tuple(getattr(e, f) for f in fields) for n, e in projects(300).items()}
    assert all(type(e) is releases.HeldEntry for e in held.values())
    # And every shard's full entries come back byte for byte, for a delta to rebuild the next shard from
    for key, data in made.shards.items():
        full = lean.entries(key)
        assert full == plain.get(key) and full is not None and releases.encode_shard(full) == data
    # And bytes that are not the digest's are refused, and nothing of them is kept
    key = next(iter(made.shards))
    with pytest.raises(releases.UntrustedRelease, match="not the root's"):
        lean.add(key, made.shards[key].replace(b'"size":10', b'"size":11'))
    assert lean.entries(key) == plain.get(key)
    # And a shard dropped from the cache takes its bytes with it
    lean.keep([])
    assert lean.get(key) is None and lean.entries(key) is None


def test_a_host_refuses_an_entry_whose_archive_is_not_its_own(store: FakeStore) -> None:
    # Given a release in which p0001's entry names p0002's archive (the validator never writes one)
    other = projects(3)["p0001"].model_copy(update={"archive_key": keys.archive_key("p0002", "1")})
    wrong = {**projects(3), "p0001": other}
    made = release(store, wrong)
    # Then a host refuses the shard that holds it (it derives each archive's key and never reads another's), and
    # keeps nothing of it
    lean = releases.HeldShards()
    with pytest.raises(releases.UntrustedRelease, match="names archive 'projects/p0002/1/dags.tar.gz'"):
        releases.load_shards(store, made.root, lean)
    sid = releases.shard_of("p0001")
    assert lean.get(made.root.shards[sid]) is None


def test_a_root_whose_count_disagrees_with_its_shards_is_refused(store: FakeStore) -> None:
    release(store, projects(3))
    raw = json.loads(store.objects[keys.RELEASE_KEY])
    raw["project_count"] = 2
    store.objects[keys.RELEASE_KEY] = canonical(raw)
    with pytest.raises(releases.UntrustedRelease, match="says 2 projects"):
        releases.read_release(store, releases.AcceptUnsigned())


def test_a_missing_shard_is_refused_with_its_key(store: FakeStore) -> None:
    made = release(store, projects(3))
    del store.objects[keys.shard_key(next(iter(made.shards)))]
    with pytest.raises(releases.UntrustedRelease, match="which is missing"):
        releases.read_release(store, releases.AcceptUnsigned())


def test_a_schema_1_release_is_not_a_root(store: FakeStore) -> None:
    store.put(keys.RELEASE_KEY, json.dumps({"schema_version": 1, "sequence": 4, "manifest_etag": "m",
                                            "published_at": NOW.isoformat(), "projects": {}}).encode())
    with pytest.raises(DocumentError, match="not a release root of schema_version 2"):
        releases.read_root(store, releases.AcceptUnsigned())


class Signs:
    def __init__(self) -> None:
        self.payloads: list[bytes] = []

    def sign(self, payload: bytes) -> Signature:
        self.payloads.append(payload)
        return Signature(key_id="k1", value="c2lnbmVk")


class Checks:
    def __init__(self) -> None:
        self.seen: list[Mapping[str, Any]] = []

    def verify(self, root: Mapping[str, Any], stored: bytes | None = None) -> None:
        self.seen.append(root)
        if root.get("signature", {}).get("value") != "c2lnbmVk":
            raise releases.UntrustedRelease("not signed")


def test_the_signature_covers_the_canonical_root_without_itself_and_is_checked_before_use(store: FakeStore) -> None:
    signer, verifier = Signs(), Checks()
    release(store, projects(2), signer=signer)
    stored = releases.read_root(store, verifier)
    assert stored is not None and stored.root.signature is not None
    assert signer.payloads == [releases.signed_payload(stored.raw)]
    assert b"signature" not in signer.payloads[0]
    # An unsigned root is refused by the same verifier
    raw = json.loads(store.objects[keys.RELEASE_KEY])
    del raw["signature"]
    store.objects[keys.RELEASE_KEY] = canonical(raw)
    with pytest.raises(releases.UntrustedRelease):
        releases.read_root(store, verifier)


def test_history_markers_list_a_projects_history_in_release_order(store: FakeStore) -> None:
    history.record(store, 1, {"sales": "1.0", "finance": "2.0"})
    history.record(store, 12, {"sales": "1.1"})
    history.record(store, 3, {"sales": None})
    got = history.read_history(store, "sales")
    assert [(h.sequence, h.version) for h in got] == [(1, "1.0"), (3, None), (12, "1.1")]
    assert history.live_before(got, "1.1") == "1.0"
    assert keys.parse_history_marker(keys.history_marker("sales", 7, "1.2.3+build.4")) == (7, "1.2.3+build.4")
