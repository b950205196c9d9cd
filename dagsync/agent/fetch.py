"""One project's tree, from the bucket into the store: download, check size and sha256, safe-extract into
staging, rename into the store. The agent's executor and the Airflow bundle (a worker materializing a pinned
release) both use it; it needs no metrics, so the bundle imports it without the agent's extras."""

from __future__ import annotations

import errno
import uuid
from collections.abc import Callable

from dagsync.core.archive import UnsafeArchive, sha256_file
from dagsync.core.models import Entry
from dagsync.core.store import ObjectStore

from .scan import record_tree
from .state import TreeRecord
from .volume import Volume


def fetch_tree(store: ObjectStore, volume: Volume, project: str, entry: Entry, *,
               on_bytes: Callable[[int], None] | None = None) -> TreeRecord:
    """All or nothing: on any error (S3, size, checksum, an unsafe archive, disk) nothing reaches the store."""
    tree = entry.tree_name
    part = volume.staging / f"{project}--{tree}--{uuid.uuid4().hex[:8]}.tar.gz.part"
    try:
        with part.open("wb") as fh:
            store.download(entry.archive_key, fh, on_bytes=on_bytes)
        size = part.stat().st_size
        if size != entry.size:
            raise UnsafeArchive(f"{entry.archive_key}: {size} bytes, the release says {entry.size}")
        digest = sha256_file(part)
        if digest != entry.sha256:
            raise UnsafeArchive(f"{entry.archive_key}: sha256 {digest} does not match the release")
        volume.install(project, tree, part)
    finally:
        part.unlink(missing_ok=True)
    return record_tree(volume, project, tree, sha256=entry.sha256)


def describe(exc: BaseException, *, plain: tuple[type[BaseException], ...] = ()) -> str:
    """An error for logs and hosts/<host>.json: our own errors as they are, others with their type."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return f"disk full: {exc}"
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, (UnsafeArchive, *plain)) else f"{type(exc).__name__}: {text}"
