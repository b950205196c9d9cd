"""Fixtures for the unit tests: an in-memory object store and release builders (no AWS)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from dagsync.agent.metrics import Metrics
from dagsync.agent.sync import Settings, Syncer
from dagsync.agent.volume import Volume
from dagsync.core.models import Release
from tests.support import signing
from tests.support.projects import Files, write_release
from tests.support.store import FakeStore


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def publish(store: FakeStore, tmp_path: Path) -> Callable[..., Release]:
    """publish({"proj": ("1.0", {"dag.py": "..."})}, sequence=1) -> the Release written as release.json."""

    def _publish(projects: dict[str, tuple[str, Files]], sequence: int, *, write: bool = True) -> Release:
        return write_release(store, tmp_path / "src", sequence, projects, write=write)

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
        return Syncer(store, Volume(dags), Settings(**opts), Metrics(), threading.Event(),  # type: ignore[arg-type]
                      signing.VERIFIER)

    return _make
