"""Reading and conditionally updating the documents in the bucket (manifest, catalogs, release)."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

from dagsync.core import keys, releases
from dagsync.core.models import Catalog, Manifest, Rejection, Release
from dagsync.core.serde import load_json, load_yaml
from dagsync.core.store import Blob, ObjectStore, PreconditionFailed

YAML = "application/yaml"
JSON = "application/json"
_pause = threading.Event().wait  # never set: a sleep that reads as what it is


class ConflictError(RuntimeError):
    """A read-modify-write kept losing races; nothing was written."""


def update(
    store: ObjectStore,
    key: str,
    change: Callable[[Blob | None], bytes | None],
    *,
    content_type: str,
    attempts: int = 40,
) -> str | None:
    """Read-modify-write `key` with IfMatch (IfNoneMatch="*" when it does not exist yet), retried on 412.

    `change` gets the current object (or None) and returns new bytes, or None for "nothing to write".
    Returns the ETag now current (None when nothing existed and nothing was written)."""
    for attempt in range(attempts):
        current = store.get(key)
        new = change(current)
        if new is None:
            return current.etag if current else None
        try:
            if current is None:
                return store.put(key, new, if_none_match="*", content_type=content_type)
            return store.put(key, new, if_match=current.etag, content_type=content_type)
        except PreconditionFailed:
            _pause(min(1.0, 0.02 * 2 ** min(attempt, 6)) * random.uniform(0.5, 1.0))
    raise ConflictError(f"{key}: still changing under us after {attempts} attempts; nothing was written")


def read_manifest(store: ObjectStore) -> tuple[Manifest | None, str | None]:
    blob = store.get(keys.MANIFEST_KEY)
    if blob is None:
        return None, None
    return load_yaml(Manifest, blob.data, keys.MANIFEST_KEY), blob.etag


def read_catalog(store: ObjectStore, project: str) -> Catalog | None:
    blob = store.get(keys.catalog_key(project))
    return None if blob is None else load_yaml(Catalog, blob.data, keys.catalog_key(project))


def read_release(store: ObjectStore, cache: releases.ShardCache | None = None) -> tuple[Release | None, str | None]:
    """The current release as a whole, for showing and for `--wait` (which apply nothing, so they take the root
    as it is; hosts and the Airflow bundle verify its signature before they apply anything)."""
    stored = releases.read_root(store, releases.AcceptUnsigned())
    if stored is None:
        return None, None
    projects = releases.load_shards(store, stored.root, cache or releases.ShardCache())
    return releases.assemble(stored.root, projects), stored.etag


def read_rejection(store: ObjectStore) -> Rejection | None:
    blob = store.get(keys.REJECTION_KEY)
    return None if blob is None else load_json(Rejection, blob.data, keys.REJECTION_KEY)
