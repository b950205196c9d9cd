"""The S3 key layout, in one place. Every component builds keys through these functions."""

from __future__ import annotations

MANIFEST_KEY = "manifest.yaml"
RELEASE_KEY = "release.json"
REJECTION_KEY = "status/rejection.json"
ARCHIVE_NAME = "dags.tar.gz"


def archive_key(project: str, version: str) -> str:
    return f"projects/{project}/{version}/{ARCHIVE_NAME}"


def catalog_key(project: str) -> str:
    return f"catalog/{project}.yaml"


def history_key(project: str) -> str:
    return f"status/history/{project}.json"


def host_status_key(host: str) -> str:
    return f"hosts/{host}.json"


HOSTS_PREFIX = "hosts/"
