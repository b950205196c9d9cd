"""The one schema: manifest, catalog, release, change event, host status, rejection.

Models declare data and constraints only; reading and writing them lives elsewhere.
The CLI, the validator and the agent all import these."""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, Protocol

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

# A project becomes a folder (and a symlink) in every host's DAG folder: keep names boring.
PROJECT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# Versions become part of S3 keys and store folder names.
# No ".." anywhere: harmless as a path segment here (a version cannot start with "."), but never worth the doubt.
VERSION_RE = re.compile(r"^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
HOST_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
SHARD_RE = re.compile(r"^[0-9a-f]{2}$")
CHAIN_RE = re.compile(r"^[0-9a-f]{32}$")


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
ShardId = Annotated[str, _check(SHARD_RE, "shard id", "2 lowercase hex digits")]


def utcnow() -> datetime:
    return datetime.now(UTC)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Publisher(_Model):
    """Who made a write, as known where it was made (dagsync.publish.provenance): the caller's AWS identity (STS),
    the CI's actor, commit and run when there is a CI, else the OS user."""

    identity: str = Field("", max_length=2048)  # STS GetCallerIdentity ARN, when known
    user: str = Field("", max_length=256)  # GITHUB_ACTOR, GITLAB_USER_LOGIN, ..., --published-by, or the OS user
    commit: str = Field("", max_length=128)  # GITHUB_SHA / CI_COMMIT_SHA
    run_url: str = Field("", max_length=2048)  # the CI run that made the write

    def describe(self) -> str:
        """One line: `alice (commit 0123456789ab, https://...) as arn:aws:sts::...`."""
        extra = ", ".join(x for x in (f"commit {self.commit[:12]}" if self.commit else "", self.run_url) if x)
        return ((self.user or "?") + (f" ({extra})" if extra else "")
                + (f" as {self.identity}" if self.identity else ""))


class Manifest(_Model):
    """Intent, written by publishers: which version of each project is live (and who wrote this version of it)."""

    schema_version: Literal[1] = 1
    allow_empty: bool = False
    projects: dict[ProjectName, Version] = Field(default_factory=dict)
    written_by: Publisher | None = None
    written_at: datetime | None = None

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


class ParsedFile(_Model):
    """One DAG file as Airflow's DagBag parsed it at publish time."""

    dag_ids: list[str] = Field(default_factory=list)
    seconds: float = Field(ge=0)


class ParseRecord(_Model):
    """What Airflow found when the publisher parsed a version: per file (path relative to the project) its dag_ids
    and parse time, the total, and the Airflow version that parsed it."""

    airflow_version: str
    seconds: float = Field(ge=0)
    files: dict[str, ParsedFile] = Field(default_factory=dict)

    @property
    def dag_ids(self) -> list[str]:
        return sorted({d for f in self.files.values() for d in f.dag_ids})


def _absent(value: object) -> bool:
    return value is None


class CatalogEntry(_Archive):
    """One published version of a project (append-only history)."""

    published_at: datetime
    published_by: str = ""
    # Set when Airflow parsed the version at publish; left out of the document otherwise (old entries read as before).
    parse: ParseRecord | None = Field(default=None, exclude_if=_absent)
    publisher: Publisher | None = None  # who published it, in full (published_by is its user)


class Catalog(_Model):
    max_document_bytes: ClassVar[int] = 8 * 1024 * 1024  # grows with history, one entry per publish

    project: ProjectName
    entries: list[CatalogEntry] = Field(default_factory=list)

    def find(self, version: str) -> CatalogEntry | None:
        return next((e for e in self.entries if e.version == version), None)


class ReleasedProject(_Archive):
    """A project resolved to exactly one immutable archive."""

    # The total parse time its catalog entry records (None: published without Airflow); left out when None, so a
    # shard without parse costs has the same bytes as before.
    parse_seconds: float | None = Field(default=None, ge=0, exclude_if=_absent)

    @property
    def tree_name(self) -> str:
        return tree_name(self.version, self.sha256)


def tree_name(version: str, sha256: str) -> str:
    """The store folder name of an archive on a host: version plus a checksum prefix, so a name is never reused for
    other content. Interned: a host holds each tree's name in several places (its record, its link, the folders it
    reads)."""
    return sys.intern(f"{version}-{sha256[:12]}")


class Entry(Protocol):
    """What a release's consumers read of a project's entry: a ReleasedProject, or the lean copy a host holds
    (dagsync.core.releases.HeldEntry)."""

    @property
    def version(self) -> str: ...
    @property
    def sha256(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def files(self) -> int: ...
    @property
    def archive_key(self) -> str: ...
    @property
    def tree_name(self) -> str: ...


class Released(Protocol):
    """What a release's consumers read of a whole release: a Release, or what a host holds of one
    (dagsync.core.releases.HeldRelease)."""

    @property
    def sequence(self) -> int: ...
    @property
    def chain(self) -> Chain | None: ...
    @property
    def projects(self) -> Mapping[str, Entry]: ...


class ParseBudget(_Model):
    """Parse time allowed per DAG file at publish: above `warn_above_seconds` the publisher warns, above
    `refuse_above_seconds` it refuses. A DAG processor re-parses every file about every 30 s, so a 5 s file costs a
    sixth of a core on every one of them."""

    refuse_above_seconds: float = Field(default=5.0, gt=0, le=3600)
    warn_above_seconds: float = Field(default=1.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _warn_below_refuse(self) -> ParseBudget:
        if self.warn_above_seconds > self.refuse_above_seconds:
            raise ValueError(f"warn_above_seconds ({self.warn_above_seconds:g}) is above refuse_above_seconds "
                             f"({self.refuse_above_seconds:g})")
        return self


class ProjectSettings(_Model):
    """`dagsync.yaml` at the top of a project's folder (optional): settings the publisher reads."""

    file_name: ClassVar[str] = "dagsync.yaml"

    parse: ParseBudget = Field(default_factory=ParseBudget)


class Chain(_Model):
    """The identity of a line of releases: made with the first release of a bucket, carried (and signed) by
    every release after it. Sequences are compared within a chain only; a chain made later replaces an older one."""

    id: Annotated[str, _check(CHAIN_RE, "chain id", "32 lowercase hex digits")]
    created_at: datetime


class Signature(_Model):
    """The validator's signature over a release root's canonical bytes (without this field)."""

    key_id: str = Field(min_length=1, max_length=128)  # sha256 (hex) of the public key's DER SubjectPublicKeyInfo
    algorithm: Literal["ECDSA_SHA_256"] = "ECDSA_SHA_256"
    value: str = Field(min_length=1, max_length=512)  # base64 of the DER-encoded signature


class ManifestWrite(_Model):
    """The manifest write a release was built from: its ETag, and who wrote it when (Publisher.describe(), as the
    manifest says)."""

    etag: str
    written_by: str = ""
    written_at: datetime | None = None


class ReleaseRoot(_Model):
    """release.json and releases/<sequence>.json: what a release is, small and signed. The projects' entries
    live in content-addressed shards (`shards`: shard id -> sha256 of the shard's bytes), so a change rewrites
    only the shards it touches, and the root authenticates every entry through those digests."""

    max_document_bytes: ClassVar[int] = 1024 * 1024

    schema_version: Literal[2] = 2
    chain: Chain
    sequence: int = Field(ge=1)
    published_at: datetime
    manifest: ManifestWrite
    changes: dict[ProjectName, Version | None] = Field(default_factory=dict)  # against sequence - 1; None: retired
    project_count: int = Field(ge=0)
    shards: dict[ShardId, Sha256] = Field(default_factory=dict)
    signature: Signature | None = None


class ReleaseShard(_Model):
    """releases/shards/<sha256>.json: the entries of the projects whose shard id is the same."""

    max_document_bytes: ClassVar[int] = 16 * 1024 * 1024

    schema_version: Literal[2] = 2
    projects: dict[ProjectName, ReleasedProject]


class Release(_Model):
    """A whole release as its consumers use it: the root's facts and every project's entry. Stored split into a
    root and shards (dagsync.core.releases); `sequence` only grows within a chain."""

    sequence: int = Field(ge=1)
    manifest_etag: str
    published_at: datetime
    projects: dict[ProjectName, ReleasedProject]
    chain: Chain | None = None
    changes: dict[ProjectName, Version | None] = Field(default_factory=dict)


class ChangeEvent(_Model):
    """Published to SNS after a release is written, one message to every host queue. `root` is the signed root
    exactly as stored; `entries` the changed projects' entries (None: retired), left out when the message would be
    too large. A host trusts nothing here that the root's signature and shard digests do not vouch for."""

    schema_version: Literal[2] = 2
    release_etag: str
    root: dict[str, Any]
    entries: dict[ProjectName, dict[str, Any] | None] | None = None

    @property
    def sequence(self) -> int:
        """The sequence the root claims (unverified: for logs and ordering hints only)."""
        value = self.root.get("sequence")
        return value if isinstance(value, int) else 0

    @property
    def changed(self) -> list[str]:
        changes = self.root.get("changes")
        return sorted(changes) if isinstance(changes, dict) else []


class Rejection(_Model):
    """Why the validator refused a manifest; status/rejection.json."""

    manifest_etag: str
    at: datetime
    reason: str
    errors: list[str] = Field(default_factory=list)


class HistoryEntry(_Model):
    """A project's live version changed in release `sequence` (version None: retired). One marker object per change
    under status/history/<project>/ (dagsync.core.keys.history_marker), written by the validator."""

    sequence: int = Field(ge=1)
    version: Version | None
    at: datetime | None = None


class HostStatus(_Model):
    """hosts/<host>.json: what one host runs, as release `against` plus its differences from it, so that the file
    (written on every change) stays a few hundred bytes whatever the number of projects. `sequence`: the newest
    release applied completely. `differences`: project -> the version live here where it is not release
    `against`'s (None: that release has it and this host does not run it). `projects`: every live version, as
    agents before differences wrote it (read, no longer written)."""

    host: HostName
    sequence: int = Field(ge=0)
    against: int = Field(0, ge=0)
    differences: dict[ProjectName, Version | None] = Field(default_factory=dict)
    projects: dict[ProjectName, Version] = Field(default_factory=dict)
    last_error: str | None = None
    agent_version: str
    updated_at: datetime

    @staticmethod
    def differences_from(release: Released | None, live: dict[str, str]) -> dict[str, str | None]:
        """`live` (project -> version on a host) as differences from `release`: the inverse of `live()`."""
        released = release.projects if release else {}
        out: dict[str, str | None] = {p: v for p, v in live.items() if p not in released or released[p].version != v}
        out.update({p: None for p in released if p not in live})
        return out

    def live(self, release: Release | None) -> dict[str, str] | None:
        """project -> the version live on this host, given the current release; None when that cannot be told
        (the host counted its differences against another release)."""
        if self.against == 0:
            return dict(self.projects)
        if release is None or release.sequence != self.against:
            return None
        out = {name: entry.version for name, entry in release.projects.items()}
        for name, version in self.differences.items():
            if version is None:
                out.pop(name, None)
            else:
                out[name] = version
        return out
