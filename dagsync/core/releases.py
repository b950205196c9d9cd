"""Releases as stored: a small signed root and content-addressed shards.

    release.json                   the current root (validator only; IfMatch on the previous one)
    releases/<sequence>.json       every accepted root, immutable (IfNoneMatch), the same bytes release.json had
    releases/shards/<sha256>.json  the entries of the projects whose shard id (first byte of sha256(name)) is the
                                   same; named by the sha256 of their canonical bytes, immutable, shared by releases

A change rewrites only the shards of the projects it changes, so the validator's writes and a host's reads grow
with the change, not with the number of projects. The root lists every shard's digest and is signed over its
canonical bytes, so one signature check and one sha256 per shard vouch for every entry. See docs/design.md."""

from __future__ import annotations

import abc
import contextlib
import functools
import hashlib
import sys
import uuid
import zlib
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from dagsync.core import keys
from dagsync.core.models import (
    Chain,
    ManifestWrite,
    Release,
    ReleasedProject,
    ReleaseRoot,
    ReleaseShard,
    Signature,
    tree_name,
)
from dagsync.core.serde import DocumentError, canonical, parse_json_object, validate_raw
from dagsync.core.store import ObjectStore, PreconditionFailed

JSON = "application/json"
FETCH_WORKERS = 8


class UntrustedRelease(ValueError):
    """A release root or shard that must not be applied: unsigned, badly signed, by a key not trusted, or bytes
    that do not match the digest the root names. The message says which; `reason` is a short name for counting
    (dagsync.core.signatures names the signature's)."""

    def __init__(self, message: str, reason: str = "untrusted") -> None:
        super().__init__(message)
        self.reason = reason


class Verifier(Protocol):
    """Decides whether a root (as parsed from its bytes, signature included) may be trusted. `stored`: the bytes it
    was parsed from, when the caller has them (a verifier may check the signature on them without encoding the root
    again)."""

    def verify(self, root: Mapping[str, Any], stored: bytes | None = None) -> None: ...


class Signer(Protocol):
    def sign(self, payload: bytes) -> Signature: ...


class AcceptUnsigned:
    """Trusts every root, signed or not: only for a deployment that chose to run without signatures."""

    def verify(self, root: Mapping[str, Any], stored: bytes | None = None) -> None:
        return None


def signed_payload(root: Mapping[str, Any]) -> bytes:
    """What a signature covers: the root's canonical bytes without the signature itself."""
    return canonical({k: v for k, v in root.items() if k != "signature"})


_SIGNATURE_KEY = b',"signature":'


def stored_payload(stored: bytes, root: Mapping[str, Any]) -> bytes | None:
    """signed_payload(root), cut from the bytes `root` was parsed from instead of encoding it again (re-encoding a
    root that lists 10,000 changes costs milliseconds). A stored root is its canonical bytes, in which the signature
    is the last key: the payload is everything before it. None unless the bytes are exactly a payload followed by
    the canonical signature and nothing else; then the caller encodes the root instead. A payload cut this way is
    only worth anything once a trusted key's signature verifies on it, and the validator signs canonical bytes
    only, so it then parses to the root without its signature."""
    if not isinstance(root.get("signature"), dict):
        return None
    cut = stored.rfind(_SIGNATURE_KEY)
    if cut < 0 or stored[cut:] != _SIGNATURE_KEY + canonical(root["signature"]) + b"}":
        return None
    return stored[:cut] + b"}"


def shard_of(project: str) -> str:
    return hashlib.sha256(project.encode()).hexdigest()[:2]


# shard_of, remembered for compose, which groups every project of a release by shard on every change (a sha256 a
# name was 16 of the validator's ~100 ms a change at 10,000 projects). The validator's and the tests'; hosts never
# call compose.
_shard_id = functools.lru_cache(maxsize=100_000)(shard_of)


def encode_shard(projects: Mapping[str, ReleasedProject]) -> bytes:
    return canonical(ReleaseShard(projects=dict(sorted(projects.items()))).model_dump(mode="json"))


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


E = TypeVar("E", ReleasedProject, "HeldEntry")


class Shards(abc.ABC, Generic[E]):
    """Parsed shards by digest, each put in from its verified bytes (`add`). Digests name content, so an entry is
    never stale; `keep` drops the rest. ShardCache holds full entries, HeldShards what a host holds of them."""

    def __init__(self) -> None:
        self._shards: dict[str, dict[str, E]] = {}
        self._placed: set[tuple[str, str]] = set()  # (shard id, digest) whose every entry was found in its place

    def get(self, key: str) -> dict[str, E] | None:
        return self._shards.get(key)

    @abc.abstractmethod
    def entries(self, key: str) -> dict[str, ReleasedProject] | None:
        """Shard `key`'s entries in full: what a delta rebuilds the next shard from, byte for byte."""

    @abc.abstractmethod
    def add(self, key: str, data: bytes) -> None:
        """Parse shard `key` from its bytes and keep it (UntrustedRelease when they are not the ones the digest
        names: nothing is kept)."""

    def keep(self, digests: Iterable[str]) -> None:
        wanted = set(digests)
        for key in [k for k in self._shards if k not in wanted]:
            del self._shards[key]
        self._placed = {p for p in self._placed if p[1] in wanted}

    def place(self, shard_id: str, key: str) -> None:
        """Check once that every entry of shard `key` belongs in shard `shard_id` (UntrustedRelease if not)."""
        if (shard_id, key) in self._placed:
            return
        for name in self._shards[key]:
            if shard_of(name) != shard_id:
                raise UntrustedRelease(f"{keys.shard_key(key)} holds {name}, which belongs in shard {shard_of(name)}",
                                       "bad_shard")
        self._placed.add((shard_id, key))


class ShardCache(Shards[ReleasedProject]):
    """Shards with their entries in full."""

    def entries(self, key: str) -> dict[str, ReleasedProject] | None:
        return self.get(key)

    def add(self, key: str, data: bytes) -> None:
        self._shards[key] = _compact(parse_shard(data, key))


class HeldEntry:
    """What a host holds of a released project's entry: what it fetches, checks and links by. A host holds every
    entry of the release (10,000 in the largest estates), so this is slotted and leaves out what it never reads
    (dag_ids, parse time) and what it can derive (the archive's key, checked on the way in): about 100 bytes where a
    ReleasedProject takes 450 with its dict (docs/agent.md, "Memory")."""

    __slots__ = ("files", "project", "sha256", "size", "version")

    def __init__(self, project: str, entry: ReleasedProject) -> None:
        own = keys.archive_key(project, entry.version)
        if entry.archive_key != own:
            raise UntrustedRelease(f"the entry of {project} names archive {entry.archive_key!r}, not {own!r}",
                                   "bad_shard")
        self.project, self.version, self.sha256 = project, sys.intern(entry.version), entry.sha256
        self.size, self.files = entry.size, entry.files

    @property
    def archive_key(self) -> str:
        return keys.archive_key(self.project, self.version)

    @property
    def tree_name(self) -> str:
        return tree_name(self.version, self.sha256)


class HeldShards(Shards[HeldEntry]):
    """A host's shards: HeldEntry entries, and each shard's verified bytes kept compressed, so that `entries` gives
    a delta the full entries to rebuild the next shard from."""

    def __init__(self) -> None:
        super().__init__()
        self._stored: dict[str, bytes] = {}  # digest -> the shard's bytes, zlib-compressed

    def entries(self, key: str) -> dict[str, ReleasedProject] | None:
        stored = self._stored.get(key)
        return parse_shard(zlib.decompress(stored), key) if stored is not None else None

    def add(self, key: str, data: bytes) -> None:
        held: dict[str, HeldEntry] = {}
        for name, entry in parse_shard(data, key).items():
            name = sys.intern(name)  # a host holds each project's name in several places: one copy
            held[name] = HeldEntry(name, entry)
        self._shards[key] = held
        self._stored[key] = zlib.compress(data, 1)

    def keep(self, digests: Iterable[str]) -> None:
        super().keep(digests)
        for key in [k for k in self._stored if k not in self._shards]:
            del self._stored[key]


@dataclass(frozen=True)
class HeldRelease:
    """What a host holds of a release: its sequence, chain, time and every project's HeldEntry."""

    sequence: int
    chain: Chain | None
    published_at: datetime
    projects: dict[str, HeldEntry]


@dataclass(frozen=True)
class StoredRoot:
    """A root as read: the model, the raw object its signature was checked on, and its ETag."""

    root: ReleaseRoot
    raw: dict[str, Any]
    etag: str


def parse_root(data: bytes, verifier: Verifier, what: str = keys.RELEASE_KEY) -> tuple[ReleaseRoot, dict[str, Any]]:
    """Parse and verify a root; DocumentError if it is not a root at all, UntrustedRelease if it is not trusted."""
    raw = parse_json_object(data, what, ReleaseRoot.max_document_bytes)
    if raw.get("schema_version") != 2:
        raise DocumentError(f"{what} is invalid: not a release root of schema_version 2 "
                            f"(schema_version {raw.get('schema_version')!r})")
    try:
        verifier.verify(raw, stored=data)
    except UntrustedRelease as exc:
        raise UntrustedRelease(f"{what} refused: {exc}", exc.reason) from None
    return validate_raw(ReleaseRoot, raw, what), raw


def read_root(store: ObjectStore, verifier: Verifier, *, sequence: int | None = None,
              if_none_match: str | None = None) -> StoredRoot | None:
    """The current root (or release `sequence` from the history); None when there is none. Raises NotModified
    when `if_none_match` is its ETag."""
    key = keys.RELEASE_KEY if sequence is None else keys.release_key(sequence)
    blob = store.get(key, if_none_match=if_none_match)
    if blob is None:
        return None
    root, raw = parse_root(blob.data, verifier, key)
    if sequence is not None and root.sequence != sequence:
        raise UntrustedRelease(f"{key} holds release {root.sequence}, not {sequence}", "wrong_sequence")
    return StoredRoot(root=root, raw=raw, etag=blob.etag)


def read_root_at(store: ObjectStore, verifier: Verifier, sequence: int) -> StoredRoot | None:
    """Release `sequence`'s root: from the history, else release.json when it is that release (its history entry
    is written just after it); None when the bucket holds neither."""
    stored = read_root(store, verifier, sequence=sequence)
    if stored is None:
        newest = read_root(store, verifier)
        stored = newest if newest is not None and newest.root.sequence == sequence else None
    return stored


def parse_shard(data: bytes, expected: str) -> dict[str, ReleasedProject]:
    """The entries of a shard from its bytes, checked against the digest `expected`."""
    found = digest(data)
    if found != expected:
        raise UntrustedRelease(f"{keys.shard_key(expected)}: its bytes have sha256 {found[:12]}, not the root's "
                               f"{expected[:12]}", "bad_shard")
    raw = parse_json_object(data, keys.shard_key(expected), ReleaseShard.max_document_bytes)
    return validate_raw(ReleaseShard, raw, keys.shard_key(expected)).projects


def _compact(projects: Mapping[str, ReleasedProject]) -> dict[str, ReleasedProject]:
    """A ShardCache holds every entry of the releases it reads (a warm validator: 10,000 in the largest estates), so
    their size counts; hosts hold HeldEntry objects instead. pydantic gives each instance its own set of the fields it
    was given: 728 bytes for seven, a third of an entry. Entries given the same fields share one set here: these
    models are frozen (nothing adds to it) and model_copy copies it before changing it."""
    shared: dict[frozenset[str], set[str]] = {}
    out: dict[str, ReleasedProject] = {}
    for name, entry in projects.items():
        fields = entry.model_fields_set
        object.__setattr__(entry, "__pydantic_fields_set__", shared.setdefault(frozenset(fields), fields))
        out[sys.intern(name)] = entry
    return out


def load_shards(store: ObjectStore, root: ReleaseRoot, cache: Shards[E]) -> dict[str, E]:
    """Every entry of the release, each shard from the cache or fetched (and checked against its digest)."""
    missing = sorted({d for d in root.shards.values() if cache.get(d) is None})

    def fetch(key: str) -> tuple[str, bytes]:
        blob = store.get(keys.shard_key(key))
        if blob is None:
            raise UntrustedRelease(f"release {root.sequence} names {keys.shard_key(key)}, which is missing",
                                   "missing_shard")
        return key, blob.data

    if missing:
        with ThreadPoolExecutor(max_workers=min(FETCH_WORKERS, len(missing))) as pool:
            for key, data in pool.map(fetch, missing):
                cache.add(key, data)
    projects: dict[str, E] = {}
    for shard_id, key in sorted(root.shards.items()):
        entries = cache.get(key)
        assert entries is not None
        cache.place(shard_id, key)
        projects.update(entries)
    if len(projects) != root.project_count:
        raise UntrustedRelease(f"release {root.sequence} says {root.project_count} projects, its shards hold "
                               f"{len(projects)}", "bad_shard")
    return projects


def changed_projects(before: ReleaseRoot, after: ReleaseRoot, cache: Shards[Any]) -> set[str] | None:
    """The projects whose tree (version and checksum) differs between two releases, from the shards whose digest
    differs, both in `cache`: what a host must look at, whatever the root's `changes` say. None when a shard is not
    in the cache."""
    names: set[str] = set()
    for sid in before.shards.keys() | after.shards.keys():
        old_key, new_key = before.shards.get(sid), after.shards.get(sid)
        if old_key == new_key:
            continue
        old = cache.get(old_key) if old_key is not None else {}
        new = cache.get(new_key) if new_key is not None else {}
        if old is None or new is None:
            return None
        for name in old.keys() | new.keys():
            was, now = old.get(name), new.get(name)
            if was is None or now is None or (was.version, was.sha256) != (now.version, now.sha256):
                names.add(name)
    return names


def assemble(root: ReleaseRoot, projects: dict[str, ReleasedProject]) -> Release:
    """A release from a validated root and validated entries: not validated again (10,000 entries, every change)."""
    return Release.model_construct(sequence=root.sequence, manifest_etag=root.manifest.etag,
                                   published_at=root.published_at, projects=projects, chain=root.chain,
                                   changes=dict(root.changes))


def read_release(store: ObjectStore, verifier: Verifier, cache: ShardCache | None = None, *,
                 sequence: int | None = None) -> Release | None:
    """The whole current release (or release `sequence`), or None when there is none."""
    stored = read_root(store, verifier, sequence=sequence)
    if stored is None:
        return None
    return assemble(stored.root, load_shards(store, stored.root, cache or ShardCache()))


def changes_between(before: Mapping[str, ReleasedProject], after: Mapping[str, ReleasedProject]) -> dict[
        str, str | None]:
    """project -> its new version (None: retired) for every project whose entry differs. An entry carried over (the
    same object) is the same without comparing it field by field: 40 ms fewer at 10,000 projects."""
    changes: dict[str, str | None] = {}
    for name in set(before) | set(after):
        old, new = before.get(name), after.get(name)
        if old is not new and old != new:
            changes[name] = new.version if new is not None else None
    return dict(sorted(changes.items()))  # sorted as the root lists them: only what changed


@dataclass(frozen=True)
class Draft:
    """A release ready to be signed and written: its root (unsigned) and the shards it adds."""

    root: ReleaseRoot
    shards: dict[str, bytes]  # digest -> canonical bytes
    release: Release


def draft(previous: StoredRoot | None, before: Mapping[str, ReleasedProject], after: dict[str, ReleasedProject], *,
          manifest: ManifestWrite, now: datetime, floor: int = 0, changes: Mapping[str, str | None] | None = None,
          cache: ShardCache | None = None) -> Draft:
    """The release after `previous` whose projects are `after`: only the shards of changed projects are new. Its
    sequence is above `floor` too (the newest in the history), so a new chain never reuses a history key. `changes`
    and `cache`: see compose."""
    return compose(
        sequence=max(previous.root.sequence if previous else 0, floor) + 1,
        chain=previous.root.chain if previous else Chain(id=uuid.uuid4().hex, created_at=now),
        before=before, after=after, table=dict(previous.root.shards) if previous else {},
        manifest=manifest, now=now, changes=changes, cache=cache,
    )


def compose(*, sequence: int, chain: Chain, after: dict[str, ReleasedProject], manifest: ManifestWrite,
            now: datetime, before: Mapping[str, ReleasedProject] | None = None,
            table: Mapping[str, str] | None = None, changes: Mapping[str, str | None] | None = None,
            cache: ShardCache | None = None) -> Draft:
    """A release of `after` whose shard table starts from `table` (the shards of `before`): the shards of the
    projects that differ are made anew, every other digest is kept.

    O(changed) for a caller that knows more (the validator): `changes`, exactly the projects whose entry differs
    between `before` and `after` (else every entry is compared), and `cache` holding `table`'s shards (each new shard
    then starts from its old entries instead of grouping every project of `after` by shard)."""
    before = before or {}
    changes = dict(sorted(changes.items())) if changes is not None else changes_between(before, after)
    shards_table = dict(table or {})
    touched = {_shard_id(p) for p in changes} if table is not None else {_shard_id(p) for p in after}
    grouped = _members(touched, changes, after, shards_table, cache) if table is not None else None
    if grouped is None:
        grouped = {sid: {} for sid in touched}
        for name, entry in after.items():
            sid = _shard_id(name)
            if sid in grouped:
                grouped[sid][name] = entry
    shards: dict[str, bytes] = {}
    for sid, entries in grouped.items():
        if not entries:
            shards_table.pop(sid, None)
            continue
        data = encode_shard(entries)
        shards_table[sid] = digest(data)
        shards[shards_table[sid]] = data
    root = ReleaseRoot(chain=chain, sequence=sequence, published_at=now, manifest=manifest, changes=changes,
                       project_count=len(after), shards=dict(sorted(shards_table.items())))
    return Draft(root=root, shards=shards, release=assemble(root, after))


def _members(touched: Iterable[str], changes: Mapping[str, str | None], after: Mapping[str, ReleasedProject],
             table: Mapping[str, str], cache: ShardCache | None) -> dict[str, dict[str, ReleasedProject]] | None:
    """The entries of `after` in each touched shard: its old members and the changed projects that belong in it,
    as `after` has them. None without a cache, or when an old shard is not in it."""
    if cache is None:
        return None
    grouped: dict[str, dict[str, ReleasedProject]] = {}
    for sid in touched:
        old = cache.get(table[sid]) if sid in table else {}
        if old is None:
            return None
        grouped[sid] = {name: after[name] for name in old if name in after}
    for name in changes:
        if name in after:
            grouped[_shard_id(name)][name] = after[name]
    return grouped


def encode_root(root: ReleaseRoot, signer: Signer | None) -> bytes:
    """The root's stored bytes: canonical JSON, with the signature over the rest when there is a signer."""
    raw = root.model_dump(mode="json", exclude={"signature"})
    if signer is not None:
        raw["signature"] = signer.sign(signed_payload(raw)).model_dump(mode="json")
    return canonical(raw)


def write(store: ObjectStore, draft: Draft, signer: Signer | None, previous_etag: str | None) -> tuple[bytes, str]:
    """Sign the root (nothing is written when signing fails), then the shards, then release.json (IfMatch on the
    previous ETag: the one point where a release is decided), then releases/<sequence>.json with the same bytes.
    Returns the root's bytes and release.json's new ETag. PreconditionFailed: another run released first, and
    nothing was moved."""
    data = encode_root(draft.root, signer)
    for key, shard in draft.shards.items():
        with contextlib.suppress(PreconditionFailed):  # the same bytes are there already: shards are named by content
            store.put(keys.shard_key(key), shard, if_none_match="*", content_type=JSON)
    if previous_etag is None:
        etag = store.put(keys.RELEASE_KEY, data, if_none_match="*", content_type=JSON)
    else:
        etag = store.put(keys.RELEASE_KEY, data, if_match=previous_etag, content_type=JSON)
    record(store, draft.root.sequence, data)
    return data, etag


def record(store: ObjectStore, sequence: int, data: bytes) -> bool:
    """releases/<sequence>.json, once, with exactly the bytes release.json had. Written after release.json moved,
    so the history never holds a release that was not released; a run that died in between left it missing, and
    the next scheduled run writes it (True when this call wrote it)."""
    try:
        store.put(keys.release_key(sequence), data, if_none_match="*", content_type=JSON)
    except PreconditionFailed:
        return False
    return True


def superseded(store: ObjectStore, sequence: int) -> bool:
    """The history holds the release after `sequence` (releases/<sequence + 1>.json exists)."""
    return store.get(keys.release_key(sequence + 1)) is not None


def check_newest(store: ObjectStore, sequence: int) -> None:
    """UntrustedRelease (reason "older_release") when the history already holds the release after `sequence`, the
    one release.json holds: it is then an older root put back (a replay, even one correctly signed), and a consumer
    with nothing newer of its own to compare with (a fresh volume, an init container, a lagging host) must not take
    it. One GET, of a key that is normally missing; the validator's next run builds on the newest release and
    repairs release.json."""
    if superseded(store, sequence):
        raise UntrustedRelease(f"{keys.RELEASE_KEY} refused: it is release {sequence}, but the history already "
                               f"holds {keys.release_key(sequence + 1)}: an older release put back", "older_release")


def newest_recorded(store: ObjectStore) -> int:
    """The highest sequence in the history (releases/<sequence>.json), 0 when there is none. One listing of
    releases/: for the rare runs that must not trust release.json's own sequence."""
    found = (keys.parse_release_key(k) for k in store.list_keys(keys.RELEASES_PREFIX))
    return max((s for s in found if s is not None), default=0)
