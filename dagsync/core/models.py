"""The one schema: manifest, catalog, release, change event, host status, rejection.

Models declare data and constraints only; reading and writing them lives elsewhere.
The CLI, the validator and the agent all import these."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

# A project becomes a folder (and a symlink) in every host's DAG folder: keep names boring.
PROJECT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# Versions become part of S3 keys and store folder names.
# No ".." anywhere: harmless as a path segment here (a version cannot start with "."), but never worth the doubt.
VERSION_RE = re.compile(r"^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
HOST_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def _check(pattern: re.Pattern[str], what: str, rule: str) -> AfterValidator:
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"{what} {value!r} is not allowed: {rule}")
        return value

    return AfterValidator(check)


ProjectName = Annotated[
    str, _check(PROJECT_RE, "project name", "use 1-63 of a-z 0-9 _ -, starting with a letter or digit")
]
Version = Annotated[
    str, _check(VERSION_RE, "version", "use 1-64 of A-Z a-z 0-9 . _ + -, starting with a letter or digit, no '..'")
]
HostName = Annotated[str, _check(HOST_RE, "host name", "use 1-63 of a-z 0-9 -, starting with a letter or digit")]
Sha256 = Annotated[str, _check(SHA256_RE, "sha256", "64 lowercase hex digits")]


def utcnow() -> datetime:
    return datetime.now(UTC)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Manifest(_Model):
    """Intent, written by publishers: which version of each project is live."""

    schema_version: Literal[1] = 1
    allow_empty: bool = False
    projects: dict[ProjectName, Version] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _not_empty_by_accident(self) -> Manifest:
        if not self.projects and not self.allow_empty:
            raise ValueError(
                "the manifest lists no projects; removing every project from every host "
                "needs `allow_empty: true` in the manifest (dagsync retire --allow-empty)"
            )
        return self


class _Archive(_Model):
    """One immutable archive of a project version, as checked when it was published or released."""

    version: Version
    archive_key: str
    sha256: Sha256
    size: int = Field(ge=0)
    files: int = Field(ge=0)
    uncompressed_size: int = Field(ge=0)
    dag_ids: list[str] = Field(default_factory=list)


class CatalogEntry(_Archive):
    """One published version of a project (append-only history)."""

    published_at: datetime
    published_by: str = ""


class Catalog(_Model):
    max_document_bytes: ClassVar[int] = 8 * 1024 * 1024  # grows with history, one entry per publish

    project: ProjectName
    entries: list[CatalogEntry] = Field(default_factory=list)

    def find(self, version: str) -> CatalogEntry | None:
        return next((e for e in self.entries if e.version == version), None)


class ReleasedProject(_Archive):
    """A project resolved to exactly one immutable archive."""

    @property
    def tree_name(self) -> str:
        """The store folder name on a host: version plus a checksum prefix, so a name is never reused
        for other content."""
        return f"{self.version}-{self.sha256[:12]}"


class Release(_Model):
    """Resolved desired state, written only by the validator. `sequence` only grows."""

    max_document_bytes: ClassVar[int] = 32 * 1024 * 1024  # grows with the number of live projects

    schema_version: Literal[1] = 1
    sequence: int = Field(ge=1)
    manifest_etag: str
    published_at: datetime
    projects: dict[ProjectName, ReleasedProject]


class ChangeEvent(_Model):
    """Published to SNS after a release is written. Agents treat it only as a hint to sync now."""

    sequence: int = Field(ge=1)
    release_etag: str
    published_at: datetime
    changed: list[ProjectName] = Field(default_factory=list)


class Rejection(_Model):
    """Why the validator refused a manifest; status/rejection.json."""

    manifest_etag: str
    at: datetime
    reason: str
    errors: list[str] = Field(default_factory=list)


class HistoryEntry(_Model):
    """A project's live version changed in release `sequence` (version None: retired)."""

    sequence: int = Field(ge=1)
    version: Version | None
    sha256: Sha256 | None = None
    at: datetime


class ProjectHistory(_Model):
    """status/history/<project>.json, appended by the validator: what was live, and from which release."""

    max_document_bytes: ClassVar[int] = 4 * 1024 * 1024

    project: ProjectName
    entries: list[HistoryEntry] = Field(default_factory=list)


class HostStatus(_Model):
    host: HostName
    sequence: int = Field(ge=0)
    projects: dict[ProjectName, Version] = Field(default_factory=dict)
    last_error: str | None = None
    agent_version: str
    updated_at: datetime
