"""The agent's record of the volume: `.dagsync/state.json`, written atomically.

The links and the store on disk are the truth; state.json adds what disk alone cannot say (the applied
sequence, the archive checksum and the file manifest of each tree, when a tree stopped being live).
A missing or corrupt file is rebuilt from disk (see recovery.py)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
)
from pydantic.dataclasses import dataclass

from dagsync.core.models import Chain

# (relative path, size, mtime_ns) of every file in a tree: the cheap per-cycle drift check.
FileEntry = tuple[str, int, int]


class StateCorrupt(ValueError):
    """state.json exists but cannot be read."""


def listing_digest(listing: Iterable[FileEntry]) -> bytes:
    """sha256 over a tree's file listing: what the stat check compares, 32 bytes whatever the number of files."""
    digest = hashlib.sha256()
    for rel, size, mtime_ns in listing:
        digest.update(f"{rel}\0{size}\0{mtime_ns}\n".encode())
    return digest.digest()


def _from_hex(value: object) -> object:
    """A digest as state.json has it (hex). Text that is not hex is no digest this agent wrote: read as none, which
    no tree matches, so the tree is checked and fetched again."""
    if not isinstance(value, str):
        return value
    try:
        return bytes.fromhex(value)
    except ValueError:
        return b""


# A digest held as its 32 bytes (a host holds two per tree: 96 bytes fewer than as hex), written as hex.
Digest = Annotated[bytes, BeforeValidator(_from_hex), PlainSerializer(bytes.hex, return_type=str)]


@dataclass(slots=True, config=ConfigDict(extra="forbid"))  # one per tree on the host: a slotted dataclass
class TreeRecord:  # takes about a fifth of a BaseModel's memory (no __dict__, no set of fields given)
    version: str
    sha256: str = ""  # archive checksum; "" for a tree adopted from disk during a rebuild
    # listing_digest of the file listing recorded at install. State files written before it kept the listing itself
    # ("listing", or "manifest" before 0.2): read, and hashed on the way in.
    listing: Digest = Field(default=b"", validation_alias=AliasChoices("listing", "manifest"))
    digest: Digest = b""  # sha256 over every file's path and content: the periodic deep check
    retired_at: float | None = None  # when it stopped being live; None while live (or never linked yet)

    @field_validator("listing", mode="before")
    @classmethod
    def _hash_a_listing(cls, value: object) -> object:
        return listing_digest(tuple(e) for e in value) if isinstance(value, list) else value


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
                if rec.retired_at is not None:
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


def dump_state(state: AgentState) -> bytes:
    """state.json's bytes, written with dagsync.core.archive.write_atomic (a reader sees the old file or the new)."""
    return state.model_dump_json(indent=1).encode()
