"""The validation gate: turn the current manifest into a release, or refuse it with a reason.

Runs the same for an S3 event and for the one-minute schedule: it always reads the CURRENT manifest
(events arrive late and out of order), is a no-op when the manifest is the one the last release was
built from, and resolves only the projects whose version changed. Beyond reading the manifest, a warm
container's work is O(changed projects): the release it builds on is kept indexed (`Live`) from run to run."""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from dagsync.core import history, keys, releases
from dagsync.core.archive import DEFAULT_LIMITS, Limits, UnsafeArchive, iter_members
from dagsync.core.dagcheck import duplicate_dag_ids, inspect_members
from dagsync.core.documents import JSON, read_catalog, read_rejection
from dagsync.core.models import (
    Catalog,
    ChangeEvent,
    Manifest,
    ManifestWrite,
    Rejection,
    ReleasedProject,
    ReleaseRoot,
    utcnow,
)
from dagsync.core.serde import DocumentError, canonical, dump_json, load_yaml
from dagsync.core.store import ObjectNotFound, ObjectStore, PreconditionFailed

log = logging.getLogger(__name__)
MAX_EVENT_BYTES = 200 * 1024


@dataclass(frozen=True)
class Outcome:
    status: Literal["noop", "accepted", "rejected"]
    detail: str = ""
    sequence: int | None = None
    changed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class Live:
    """The release a run builds on, indexed for the checks: every entry, each project's version and the project
    that declares each dag_id. Built once per release (O(projects)); kept while release.json names the same shards,
    and moved on with each release this container writes, so the next run compares the manifest with it and checks
    dag_ids in O(changed)."""

    def __init__(self, table: Mapping[str, str], projects: dict[str, ReleasedProject]) -> None:
        self.table = dict(table)
        self.projects = projects
        self.versions = {name: entry.version for name, entry in projects.items()}
        self.owners = {dag_id: name for name, entry in projects.items() for dag_id in entry.dag_ids}
        # A release in which two projects share a dag_id (written before rule D4, or by hand) has no single owner
        # per dag_id: its runs compare every project's dag_ids instead.
        self.unique = len(self.owners) == sum(len(entry.dag_ids) for entry in projects.values())

    def clashes(self, resolved: dict[str, ReleasedProject], moved: set[str]) -> list[str]:
        """duplicate_dag_ids over `resolved` (this release with the projects in `moved` resolved anew or retired),
        looking only at the moved projects and the live ones that declare the same dag_ids: the others were checked
        against each other when they went live."""
        if not self.unique:
            return duplicate_dag_ids({name: entry.dag_ids for name, entry in resolved.items()})
        declared: dict[str, Collection[str]] = {name: resolved[name].dag_ids for name in moved if name in resolved}
        for dag_ids in list(declared.values()):
            for dag_id in dag_ids:
                owner = self.owners.get(dag_id)
                if owner is not None and owner not in moved:
                    declared[owner] = resolved[owner].dag_ids
        return duplicate_dag_ids(declared)

    def advance(self, table: Mapping[str, str], resolved: dict[str, ReleasedProject],
                changes: Mapping[str, str | None]) -> None:
        """Become the release just written: `resolved`, which differs from this one in `changes` only."""
        for name in changes:
            old = self.projects.get(name)
            for dag_id in old.dag_ids if old is not None else ():
                if self.owners.get(dag_id) == name:
                    del self.owners[dag_id]
            new = resolved.get(name)
            if new is None:
                self.versions.pop(name, None)
                continue
            self.versions[name] = new.version
            self.owners.update(dict.fromkeys(new.dag_ids, name))
        self.table, self.projects = dict(table), resolved


class Validator:
    def __init__(
        self,
        store: ObjectStore,
        *,
        on_release: Callable[[ChangeEvent], None],
        on_rejection: Callable[[Rejection], None] = lambda _: None,
        limits: Limits = DEFAULT_LIMITS,
        attempts: int = 3,
        record_history: bool = True,
        signer: releases.Signer,
        verifier: releases.Verifier,
    ) -> None:
        self.store = store
        self.on_release = on_release
        self.on_rejection = on_rejection
        self.limits = limits
        self.attempts = attempts
        self.record_history = record_history
        self.signer = signer  # every root it writes is signed (dagsync.core.kms.KmsSigner in a deployment)
        self.verifier = verifier  # trusts its own key(s): it builds only on a root it signed
        # Shards by digest: content-addressed, so a warm container keeps them and reads only what is new.
        self.shards = releases.ShardCache()
        self.live: Live | None = None  # the release last built on or written, indexed

    def run(self, *, recheck_rejected: bool = False) -> Outcome:
        """Validate the current manifest. `recheck_rejected` (the schedule) looks again at a manifest that
        was rejected, in case what it was missing (a catalog entry, an archive) has appeared since."""
        for _ in range(self.attempts):
            try:
                return self._run_once(recheck_rejected)
            except PreconditionFailed:
                log.info("release.json changed while validating; starting over")
        raise RuntimeError(f"release.json kept changing during {self.attempts} attempts")

    def _previous(self) -> tuple[releases.StoredRoot | None, str | None, Live]:
        """The current root (None when there is none, or when it cannot be built on: then the next release starts
        a new chain), the ETag to replace, and the current projects."""
        try:
            stored = releases.read_root(self.store, self.verifier)
            if stored is None:
                return None, None, Live({}, {})
            live = self._live(stored.root)
        except (DocumentError, releases.UntrustedRelease) as exc:
            log.warning("release.json cannot be built on (%s); the next release starts a new chain", exc)
            blob = self.store.get(keys.RELEASE_KEY)
            return None, blob.etag if blob else None, Live({}, {})
        self.shards.keep(stored.root.shards.values())
        return stored, stored.etag, live

    def _live(self, root: ReleaseRoot) -> Live:
        """Release `root`'s projects, indexed: the ones kept when it names the same shards (the same entries, by
        their digests), else read from its shards."""
        if self.live is None or self.live.table != root.shards or len(self.live.projects) != root.project_count:
            self.live = Live(root.shards, releases.load_shards(self.store, root, self.shards))
        return self.live

    def _newest(self, previous: releases.StoredRoot | None, current: Live) -> tuple[
            releases.StoredRoot | None, dict[str, ReleasedProject], int]:
        """What to build on, and the sequence floor. release.json is normally the newest release; when the history
        already holds the release after it, release.json is an older root put back (a replay, even a correctly
        signed one): build on the newest recorded release instead, so that a sequence is never used twice and
        hosts, which ignore older releases, take the next one. With no root to build on, the new chain starts
        above every sequence in the history."""
        if previous is None:
            return None, {}, releases.newest_recorded(self.store)
        if not releases.superseded(self.store, previous.root.sequence):
            return previous, current.projects, 0
        newest = releases.newest_recorded(self.store)
        log.warning("release.json is release %s but the history holds release %s: building on that",
                    previous.root.sequence, newest)
        try:
            stored = releases.read_root(self.store, self.verifier, sequence=newest)
            if stored is not None:
                return stored, releases.load_shards(self.store, stored.root, self.shards), newest
        except (DocumentError, releases.UntrustedRelease) as exc:
            log.warning("release %s cannot be built on (%s); the next release starts a new chain", newest, exc)
        return None, {}, newest

    def _run_once(self, recheck_rejected: bool) -> Outcome:
        # Release first, then manifest: the manifest read is then at least as new as the one the release was
        # built from, and the IfMatch on the release makes sure nobody released anything in between.
        # (Manifest first would let a slow run release an old manifest over a newer release.)
        previous, previous_etag, current = self._previous()
        if recheck_rejected and previous is not None:
            self._repair_history(previous)
        blob = self.store.get(keys.MANIFEST_KEY)
        if blob is None:
            return Outcome("noop", "no manifest yet")
        if previous is not None and previous.root.manifest.etag == blob.etag:
            return Outcome("noop", "manifest unchanged since release", sequence=previous.root.sequence)
        rejected = _read_rejection(self.store)
        already = rejected is not None and rejected.manifest_etag == blob.etag
        if already and not recheck_rejected:
            assert rejected is not None
            return Outcome("noop", "manifest already rejected", errors=list(rejected.errors))

        manifest, resolved, changes, errors = self._check(blob.data, current)
        if errors:
            if already and rejected is not None and rejected.errors == errors:
                return Outcome("noop", "manifest still rejected", errors=errors)
            return self._reject(blob.etag, errors)

        base, before, floor = self._newest(previous, current)
        assert manifest is not None  # no errors: it parsed
        written = ManifestWrite(etag=blob.etag, written_at=manifest.written_at,
                                written_by=manifest.written_by.describe() if manifest.written_by else "")
        # `changes` are against the current release; building on another one (a replay put back), draft finds them.
        known = before is current.projects
        draft = releases.draft(base, before, resolved, manifest=written, now=utcnow(), floor=floor,
                               changes=changes if known else None, cache=self.shards if known else None)
        data, etag = releases.write(self.store, draft, self.signer, previous_etag)
        sequence, changes = draft.root.sequence, dict(draft.root.changes)
        self.shards.keep(draft.root.shards.values())
        for key, shard in draft.shards.items():
            self.shards.add(key, shard)
        # Kept only when built on and indexed by owner: an accepted release holds no shared dag_id, so one that
        # replaced a release that did (or was built on another) is indexed anew by the next run, once.
        keep = known and current.unique
        if keep:
            current.advance(draft.root.shards, resolved, changes)
        self.live = current if keep else None
        self.on_release(change_event(data, etag, resolved, changes))
        if self.record_history:
            history.record(self.store, sequence, changes)
        return Outcome("accepted", f"release {sequence}", sequence=sequence, changed=sorted(changes))

    def _repair_history(self, previous: releases.StoredRoot) -> None:
        """releases/<sequence>.json for the current release, if a run died between release.json and it."""
        if releases.record(self.store, previous.root.sequence, canonical(previous.raw)):
            log.warning("releases/%s was missing and has been written", previous.root.sequence)

    def _check(self, data: bytes, current: Live) -> tuple[
            Manifest | None, dict[str, ReleasedProject], dict[str, str | None], list[str]]:
        try:
            manifest = load_yaml(Manifest, data, keys.MANIFEST_KEY)
        except DocumentError as exc:
            return None, {}, {}, [str(exc)]
        resolved, changes, errors = self._resolve(manifest, current)
        return manifest, resolved, changes, errors + current.clashes(resolved, set(changes))

    def _resolve(self, manifest: Manifest, current: Live) -> tuple[
            dict[str, ReleasedProject], dict[str, str | None], list[str]]:
        """Every project of the manifest resolved, and what changed: the current release's entry where the version
        is the same (validated when it went live; hosts re-check its sha256), the others read from the catalog.
        Finding which versions differ is the one step that looks at every project (0.4 ms at 10,000)."""
        wanted, versions = manifest.projects, current.versions
        changes: dict[str, str | None] = {p: v for p, v in wanted.items() if versions.get(p) != v}
        changes.update(dict.fromkeys(versions.keys() - wanted))
        changes = dict(sorted(changes.items()))
        resolved = dict(current.projects)
        errors: list[str] = []
        for project, version in changes.items():
            resolved.pop(project, None)
            if version is None:
                continue
            try:
                resolved[project] = self._resolve_one(project, version)
            except (ResolveError, DocumentError) as exc:
                errors.append(f"{project} {version}: {exc}")
        return resolved, changes, errors

    def _resolve_one(self, project: str, version: str) -> ReleasedProject:
        catalog: Catalog | None = read_catalog(self.store, project)
        if catalog is not None and catalog.project != project:
            raise ResolveError(f"catalog/{project}.yaml says it is the catalog of {catalog.project!r}")
        entry = catalog.find(version) if catalog else None
        if entry is None:
            known = ", ".join(e.version for e in catalog.entries[-5:]) if catalog else ""
            raise ResolveError(f"not in catalog/{project}.yaml" + (f" (latest: {known})" if known else ""))
        if entry.archive_key != keys.archive_key(project, version):
            raise ResolveError(f"catalog points at {entry.archive_key!r}, not this project's archive key")
        if entry.size > self.limits.max_compressed_bytes:
            raise ResolveError(f"archive is {entry.size} bytes; the limit is {self.limits.max_compressed_bytes}")
        data = self._fetch(entry.archive_key, entry.size)
        if len(data) != entry.size:
            raise ResolveError(f"archive is {len(data)} bytes, the catalog says {entry.size}")
        digest = hashlib.sha256(data).hexdigest()
        if digest != entry.sha256:
            raise ResolveError(
                f"archive sha256 {digest[:12]} does not match the catalog's {entry.sha256[:12]} "
                "(was the archive overwritten?)"
            )
        try:
            # With a parse record, the dag_ids Airflow found at publish decide clashes; `ast` only checks syntax.
            report = inspect_members(iter_members(io.BytesIO(data), self.limits), duplicates=entry.parse is None)
        except UnsafeArchive as exc:
            raise ResolveError(f"unsafe archive: {exc}") from None
        if report.errors:
            raise ResolveError("DAG content refused: " + "; ".join(report.errors))
        if (report.files, report.uncompressed_size) != (entry.files, entry.uncompressed_size):
            raise ResolveError(
                f"archive holds {report.files} files ({report.uncompressed_size} bytes), the catalog says "
                f"{entry.files} ({entry.uncompressed_size} bytes)"
            )
        return ReleasedProject(
            version=version,
            archive_key=entry.archive_key,
            sha256=digest,
            size=len(data),
            files=report.files,
            uncompressed_size=report.uncompressed_size,
            dag_ids=report.dag_ids if entry.parse is None else entry.parse.dag_ids,
            parse_seconds=None if entry.parse is None else entry.parse.seconds,
        )

    def _fetch(self, key: str, expected: int) -> bytes:
        """The archive, read no further than one chunk past the size the catalog records."""
        sink = _BoundedSink(expected)
        try:
            self.store.download(key, sink)
        except _TooLarge:
            raise ResolveError(f"archive is larger than the {expected} bytes the catalog records") from None
        except ObjectNotFound:
            raise ResolveError(f"archive {key} is missing") from None
        return sink.getvalue()

    def _reject(self, manifest_etag: str, errors: list[str]) -> Outcome:
        reason = errors[0] if len(errors) == 1 else f"{len(errors)} problems: " + "; ".join(errors)
        rejection = Rejection(manifest_etag=manifest_etag, at=utcnow(), reason=reason, errors=errors)
        self.store.put(keys.REJECTION_KEY, dump_json(rejection), content_type=JSON)
        self.on_rejection(rejection)
        return Outcome("rejected", reason, errors=errors)


class _TooLarge(Exception):
    pass


class _BoundedSink(io.BytesIO):
    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def write(self, data: Any) -> int:
        if self.tell() + len(data) > self.limit:
            raise _TooLarge
        return super().write(data)


def _read_rejection(store: ObjectStore) -> Rejection | None:
    try:
        return read_rejection(store)
    except DocumentError:
        return None  # unreadable: validate as if there were none, and overwrite it if rejected again


class ResolveError(ValueError):
    pass


def change_event(root: bytes, etag: str, projects: dict[str, ReleasedProject],
                 changes: dict[str, str | None]) -> ChangeEvent:
    """The message for every host: the signed root as stored, and the changed projects' entries while the message
    stays well under SNS's 256 KB (hosts fetch the shards otherwise)."""
    entries = {p: (projects[p].model_dump(mode="json") if v is not None else None) for p, v in changes.items()}
    event = ChangeEvent(release_etag=etag, root=json.loads(root), entries=entries)
    if len(event.model_dump_json()) > MAX_EVENT_BYTES:
        event = ChangeEvent(release_etag=etag, root=event.root)
    return event
