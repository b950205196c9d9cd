"""Fixtures for the agent's unit tests: an in-memory object store and release builders (no AWS)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import pytest

from dagsync.agent.metrics import Metrics
from dagsync.agent.sync import Settings, Syncer
from dagsync.agent.volume import Volume
from dagsync.core import keys, serde
from dagsync.core.archive import build_archive
from dagsync.core.models import Release, ReleasedProject
from dagsync.core.store import Blob, NotModified, ObjectNotFound


class FakeStore:
    """ObjectStore in memory; `fail` makes every call raise (S3 unreachable)."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.etags: dict[str, str] = {}
        self.fail: Exception | None = None
        self.gets: list[str] = []
        self.downloads: list[str] = []
        self._n = 0

    def _check(self) -> None:
        if self.fail is not None:
            raise self.fail

    def get(self, key: str, *, if_none_match: str | None = None) -> Blob | None:
        self._check()
        self.gets.append(key)
        if key not in self.objects:
            return None
        if if_none_match and if_none_match == self.etags[key]:
            raise NotModified(key)
        return Blob(self.objects[key], self.etags[key])

    def put(self, key: str, data: bytes, *, if_match: str | None = None, if_none_match: str | None = None,
            content_type: str = "application/octet-stream") -> str:
        self._check()
        self._n += 1
        self.objects[key] = data
        self.etags[key] = f'"etag-{self._n}"'
        return self.etags[key]

    def download(self, key: str, fileobj: BinaryIO, *, on_bytes: Callable[[int], None] | None = None) -> None:
        self._check()
        self.downloads.append(key)
        if key not in self.objects:
            raise ObjectNotFound(key)  # as S3Store does
        data = self.objects[key]
        fileobj.write(data)
        if on_bytes:
            on_bytes(len(data))

    def list_keys(self, prefix: str) -> list[str]:
        return sorted(k for k in self.objects if k.startswith(prefix))

    def delete(self, key: str) -> None:
        self.objects.pop(key, None)


Files = dict[str, str]


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def publish(store: FakeStore, tmp_path: Path) -> Callable[..., Release]:
    """publish({"proj": ("1.0", {"dag.py": "..."})}, sequence=1) -> the Release written as release.json."""
    src = tmp_path / "src"

    def _publish(projects: dict[str, tuple[str, Files]], sequence: int, *, write: bool = True) -> Release:
        released: dict[str, ReleasedProject] = {}
        for name, (version, files) in projects.items():
            root = src / name / version
            for rel, text in files.items():
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                (root / rel).write_text(text)
            built = build_archive(root)
            key = keys.archive_key(name, version)
            store.objects[key] = built.data
            store.etags[key] = f'"{built.sha256[:8]}"'
            released[name] = ReleasedProject(
                version=version, archive_key=key, sha256=built.sha256, size=built.size,
                files=built.files, uncompressed_size=built.uncompressed_size,
            )
        release = Release(sequence=sequence, manifest_etag='"m"', published_at=datetime.now(UTC),
                          projects=released)
        if write:
            store.put(keys.RELEASE_KEY, serde.dump_json(release))
        return release

    return _publish


@pytest.fixture
def dags(tmp_path: Path) -> Path:
    path = tmp_path / "dags"
    path.mkdir()
    return path


@pytest.fixture
def make_syncer(store: FakeStore, dags: Path) -> Callable[..., Syncer]:
    def _make(**settings: object) -> Syncer:
        opts: dict[str, object] = {"host": "host-a", "retention_grace": 0.0}
        opts.update(settings)
        return Syncer(store, Volume(dags), Settings(**opts), Metrics(), threading.Event())  # type: ignore[arg-type]

    return _make
