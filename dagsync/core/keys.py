"""The S3 key layout, in one place. Every component builds keys through these functions."""

from __future__ import annotations

import re

MANIFEST_KEY = "manifest.yaml"
RELEASE_KEY = "release.json"
REJECTION_KEY = "status/rejection.json"
ARCHIVE_NAME = "dags.tar.gz"
RELEASES_PREFIX = "releases/"
SHARDS_PREFIX = "releases/shards/"
HISTORY_PREFIX = "status/history/"
HOSTS_PREFIX = "hosts/"
_MARKER = re.compile(r"^(\d{10})\.(.*)$")
_RELEASE = re.compile(r"^releases/(\d{10})\.json$")
RETIRED = "-"  # a version never starts with "-": a marker with it records a retirement


def archive_key(project: str, version: str) -> str:
    return f"projects/{project}/{version}/{ARCHIVE_NAME}"


def catalog_key(project: str) -> str:
    return f"catalog/{project}.yaml"


def release_key(sequence: int) -> str:
    """Every accepted release root, immutable; zero-padded so a listing is in release order."""
    return f"{RELEASES_PREFIX}{sequence:010d}.json"


def parse_release_key(key: str) -> int | None:
    """The sequence of a history key (releases/<sequence>.json); None for anything else under releases/."""
    match = _RELEASE.match(key)
    return int(match.group(1)) if match else None


def shard_key(digest: str) -> str:
    """A release shard, named by the sha256 of its bytes (immutable, shared by every release that has it)."""
    return f"{SHARDS_PREFIX}{digest}.json"


def history_prefix(project: str) -> str:
    return f"{HISTORY_PREFIX}{project}/"


def history_marker(project: str, sequence: int, version: str | None) -> str:
    """An empty object whose key says that `project` became `version` (None: retired) in release `sequence`:
    one listing gives a project's whole history."""
    return f"{history_prefix(project)}{sequence:010d}.{version or RETIRED}"


def parse_history_marker(key: str) -> tuple[int, str | None] | None:
    """(sequence, version or None) from a marker key; None for anything else under the prefix."""
    match = _MARKER.match(key.rsplit("/", 1)[-1])
    if match is None:
        return None
    version = match.group(2)
    return int(match.group(1)), (None if version == RETIRED else version)


def host_status_key(host: str) -> str:
    return f"hosts/{host}.json"
