"""The embedded stack as a real process, shared by a module's tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dagsync.local.procs import LocalStackProcess, start_local_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStackProcess]:
    log_dir = tmp_path_factory.mktemp("stack")
    with open(log_dir / "local-stack.log", "w") as log:
        proc = start_local_stack(hosts=2, log=log)
        try:
            yield proc
        finally:
            assert proc.stop() == 0, f"dagsync local up did not exit 0 (log: {log_dir})"


def link_target(dags_dir: Path, project: str) -> str | None:
    link = dags_dir / project
    return os.readlink(link) if os.path.islink(link) else None
