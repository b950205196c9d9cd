"""The agent's record of the volume: `.dagsync/state.json`, written atomically.

The links and the store on disk are the truth; state.json adds what disk alone cannot say (the applied
sequence, the archive checksum and the file manifest of each tree, when a tree stopped being live).
A missing or corrupt file is rebuilt from disk (see recovery.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from dagsync.core.archive import write_atomic
from dagsync.core.models import Chain

# (relative path, size, mtime_ns) of every file in a tree: the cheap per-cycle drift check.
FileEntry = tuple[str, int, int]


class StateCorrupt(ValueError):
    """state.json exists but cannot be read."""


class TreeRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str
    sha256: str = ""  # archive checksum; "" for a tree adopted from disk during a rebuild
    # The file listing recorded at install. ("manifest" in state files written before 0.2; still read.)
    listing: list[FileEntry] = Field(default_factory=list, validation_alias=AliasChoices("listing", "manifest"))
    digest: str = ""  # sha256 over every file's path and content: the periodic deep check
    retired_at: float | None = None  # when it stopped being live; None while live (or never linked yet)


class AgentState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    chain: Chain | None = None  # the release chain the sequences below count in
    bucket: str | None = None  # the bucket that chain came from (None: recorded before buckets were)
    sequence: int = 0  # the last release applied completely
    highest_sequence: int = 0  # the newest release any part of which was applied: never go below it
    release_etag: str | None = None
    links: dict[str, str] = Field(default_factory=dict)  # project -> tree this agent linked
    trees: dict[str, dict[str, TreeRecord]] = Field(default_factory=dict)
    rebuilt: bool = False  # true when this record was rebuilt from disk

    def record(self, project: str, tree: str) -> TreeRecord | None:
        return self.trees.get(project, {}).get(tree)

    def mark_live(self, project: str, live: str | None, now: float) -> None:
        """`live` is the project's linked tree (None: none); every other tree's retention clock starts now,
        unless it is already running."""
        for tree, rec in self.trees.get(project, {}).items():
            if tree == live:
                rec.retired_at = None
            elif rec.retired_at is None:
                rec.retired_at = now

    def versions(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for project, tree in sorted(self.links.items()):
            rec = self.record(project, tree)
            out[project] = rec.version if rec else tree.rsplit("-", 1)[0]
        return out


def load_state(path: Path) -> AgentState | None:
    """None when there is no file; StateCorrupt when there is one that cannot be used."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return AgentState.model_validate(json.loads(data))
    except (ValueError, ValidationError) as exc:
        raise StateCorrupt(f"{path}: {str(exc).splitlines()[0]}") from None


def save_state(path: Path, state: AgentState) -> None:
    """Write temp, fsync, os.replace, fsync the folder: a reader sees the old file or the new one."""
    write_atomic(path, state.model_dump_json(indent=1).encode())
