"""What a manifest write did: the value the publisher returns and `--wait` judges."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ManifestChange:
    project: str
    version: str | None  # None: retired
    previous: str | None
    etag: str | None  # the manifest ETag after the write (the current one when nothing changed)
    changed: bool
    release_sequence_before: int
