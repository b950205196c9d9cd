"""The next release from a change event: a host one release behind rebuilds it with no metadata read.

A change event carries the signed root as stored and the new entries of the changed projects. `next_root` takes
it only when it is exactly the release after the one the host holds (same chain, sequence + 1) and its signature
verifies with the host's trusted keys; `rebuild` then makes every shard the root changed from the host's copy of
the previous shard plus the event's entries, and keeps a shard only when its sha256 is the one the signed root
names. So a delta never applies an entry the release does not hold: whatever is not vouched for by the root is
refused (UntrustedRelease, reason "bad_delta") or left to the conditional read that follows (docs/design.md)."""

from __future__ import annotations

from typing import Any

from dagsync.core.models import ChangeEvent, ReleasedProject, ReleaseRoot
from dagsync.core.releases import Shards, UntrustedRelease, Verifier, digest, encode_shard, parse_root, shard_of
from dagsync.core.serde import DocumentError, canonical, validate_raw

BAD_DELTA = "bad_delta"


def next_root(event: ChangeEvent, held: ReleaseRoot, verifier: Verifier) -> ReleaseRoot | None:
    """The event's root when it is the release right after `held` in the same chain; None otherwise (the caller
    reads release.json instead). UntrustedRelease when its signature does not verify, DocumentError when it is not
    a root."""
    if event.sequence != held.sequence + 1:
        return None
    root, _ = parse_root(canonical(event.root), verifier, f"change event for release {event.sequence}")
    if root.chain != held.chain or root.sequence != held.sequence + 1:
        return None
    return root


def rebuild(root: ReleaseRoot, held: ReleaseRoot, event: ChangeEvent, cache: Shards[Any]) -> None:
    """Put into `cache` every shard the event's changes touch, rebuilt from `held`'s shard (when cached) plus the
    event's entries, each checked against the digest the signed root names; a shard not rebuilt is left for the
    caller to fetch (releases.load_shards fetches what the cache lacks). UntrustedRelease (BAD_DELTA) when the
    entries are not exactly the root's changes or a rebuilt shard does not match the root: nothing of the event is
    then kept. An event without entries (too large to carry them) rebuilds nothing."""
    if event.entries is None:
        return
    entries = _entries(root, event)
    grouped: dict[str, dict[str, ReleasedProject | None]] = {}
    for name, entry in entries.items():
        grouped.setdefault(shard_of(name), {})[name] = entry
    rebuilt: dict[str, bytes] = {}
    for sid, changed in sorted(grouped.items()):
        before = held.shards.get(sid)
        previous = cache.entries(before) if before is not None else {}
        if previous is None:
            continue
        projects = {**previous, **{n: e for n, e in changed.items() if e is not None}}
        for name in (n for n, e in changed.items() if e is None):
            projects.pop(name, None)
        want = root.shards.get(sid)
        data = encode_shard(projects) if projects else None
        if (data is None and want is not None) or (data is not None and digest(data) != want):
            raise UntrustedRelease(f"change event for release {root.sequence}: its entries for shard {sid} do not "
                                   "match the digest the signed root names", BAD_DELTA)
        if want is not None and data is not None:
            rebuilt[want] = data
    for key, data in rebuilt.items():
        cache.add(key, data)


def _entries(root: ReleaseRoot, event: ChangeEvent) -> dict[str, ReleasedProject | None]:
    entries = event.entries or {}
    if set(entries) != set(root.changes):
        raise UntrustedRelease(f"change event for release {root.sequence}: its entries name "
                               f"{sorted(entries)}, the signed root's changes {sorted(root.changes)}", BAD_DELTA)
    parsed: dict[str, ReleasedProject | None] = {}
    for name, raw in entries.items():
        try:
            entry = None if raw is None else validate_raw(ReleasedProject, raw, f"change event entry {name}")
        except DocumentError as exc:
            raise UntrustedRelease(str(exc), BAD_DELTA) from None
        if (entry.version if entry else None) != root.changes[name]:
            raise UntrustedRelease(f"change event for release {root.sequence}: entry {name} is not the version the "
                                   f"signed root names ({root.changes[name]})", BAD_DELTA)
        parsed[name] = entry
    return parsed
