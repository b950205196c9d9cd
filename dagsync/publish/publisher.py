"""Publishing: immutable archives, an append-only catalog, and the manifest updated in place.

Every write is conditional, so twenty teams can publish at once without losing each other's updates."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pydantic import TypeAdapter, ValidationError

from dagsync.core import keys, releases
from dagsync.core.archive import BuiltArchive
from dagsync.core.documents import YAML, read_catalog, update
from dagsync.core.models import Catalog, CatalogEntry, Manifest, ProjectName, Publisher, Version, utcnow
from dagsync.core.serde import DocumentError, dump_yaml, dump_yaml_json, load_yaml
from dagsync.core.store import Blob, ObjectStore, PreconditionFailed
from dagsync.publish import provenance
from dagsync.publish.change import ManifestChange
from dagsync.publish.content import AST_ONLY, Checks, Packaged, package
from dagsync.publish.content import PublishError as PublishError

D = TypeVar("D", Catalog, Manifest)


@dataclass(frozen=True)
class PublishResult:
    project: str
    version: str
    sha256: str
    size: int
    files: int
    dag_ids: list[str]
    archive_created: bool
    catalog_appended: bool
    manifest: ManifestChange | None
    checked: Packaged


def check_name(project: str, version: str | None = None) -> None:
    try:
        TypeAdapter(ProjectName).validate_python(project)
        if version is not None:
            TypeAdapter(Version).validate_python(version)
    except ValidationError as exc:
        raise PublishError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None




def publish(
    store: ObjectStore,
    project: str,
    version: str,
    source: Path,
    *,
    promote_now: bool = False,
    published_by: str | None = None,
    checks: Checks = AST_ONLY,
    publisher: Publisher | None = None,
) -> PublishResult:
    """Package and check `source` (with Airflow's DagBag when `checks` names an interpreter), upload it once, and
    append it to the catalog; nothing is uploaded when a check refuses it. `publisher`: who publishes
    (dagsync.publish.provenance; default: this process, without an AWS identity); `published_by` names its user."""
    check_name(project, version)
    who = publisher or provenance.current(user=published_by)
    if published_by:
        who = who.model_copy(update={"user": published_by})
    checked = package(source, project, checks)
    built, dag_ids = checked.built, checked.dag_ids
    archive_key = keys.archive_key(project, version)
    created = _put_archive(store, archive_key, built, project, version)
    entry = CatalogEntry(
        version=version,
        archive_key=archive_key,
        sha256=built.sha256,
        size=built.size,
        files=built.files,
        uncompressed_size=built.uncompressed_size,
        dag_ids=dag_ids,
        published_at=utcnow(),
        published_by=who.user,
        publisher=who,
        parse=checked.parse,
    )
    appended = _append_catalog(store, project, entry)
    change = promote(store, project, version, publisher=who) if promote_now else None
    return PublishResult(
        project=project,
        version=version,
        sha256=built.sha256,
        size=built.size,
        files=built.files,
        dag_ids=dag_ids,
        archive_created=created,
        catalog_appended=appended,
        manifest=change,
        checked=checked,
    )


def _put_archive(store: ObjectStore, key: str, built: BuiltArchive, project: str, version: str) -> bool:
    try:
        store.put(key, built.data, if_none_match="*", content_type="application/gzip")
        return True
    except PreconditionFailed:
        existing = store.get(key)
        if existing is not None and existing.data == built.data:
            return False  # identical content: publishing again is a no-op
        raise PublishError(
            f"{project} {version} is already published with different content; versions are immutable, "
            "publish a new version"
        ) from None


def _append_catalog(store: ObjectStore, project: str, entry: CatalogEntry) -> bool:
    appended = False

    def change(blob: Blob | None) -> bytes | None:
        nonlocal appended
        catalog = Catalog(project=project) if blob is None else _load(Catalog, blob, keys.catalog_key(project))
        existing = catalog.find(entry.version)
        if existing is not None:
            if existing.sha256 != entry.sha256:
                raise PublishError(
                    f"catalog/{project}.yaml already records {entry.version} with sha256 {existing.sha256[:12]}"
                )
            appended = False
            return None
        appended = True
        return dump_yaml(Catalog(project=project, entries=[*catalog.entries, entry]))

    update(store, keys.catalog_key(project), change, content_type=YAML)
    return appended


def _load(model: type[D], blob: Blob, what: str) -> D:
    try:
        return load_yaml(model, blob.data, what)
    except DocumentError as exc:
        raise PublishError(f"{exc}; fix it before publishing (dagsync validate helps)") from None


def _change_manifest(store: ObjectStore, project: str, version: str | None, *, allow_empty: bool,
                     publisher: Publisher | None) -> ManifestChange:
    stored = releases.read_root(store, releases.AcceptUnsigned())  # only its sequence: --wait's starting point
    before = stored.root.sequence if stored else 0
    previous: str | None = None
    changed = False

    def change(blob: Blob | None) -> bytes | None:
        nonlocal previous, changed
        projects: dict[str, str] = {}
        if blob is not None:
            current = _load(Manifest, blob, keys.MANIFEST_KEY)
            projects = dict(current.projects)
        previous = projects.get(project)
        if previous == version:
            changed = False
            return None
        if version is None:
            projects.pop(project, None)
        else:
            projects[project] = version
        if not projects and not allow_empty:
            raise PublishError(
                f"retiring {project} would leave the manifest empty and remove every project from every host; "
                "pass --allow-empty if that is what you mean"
            )
        changed = True
        manifest = Manifest(projects=dict(sorted(projects.items())), allow_empty=not projects,
                            written_by=publisher or provenance.current(), written_at=utcnow())
        return dump_yaml_json(manifest)

    etag = update(store, keys.MANIFEST_KEY, change, content_type=YAML)
    return ManifestChange(project, version, previous, etag, changed, before)


def promote(store: ObjectStore, project: str, version: str, *, publisher: Publisher | None = None) -> ManifestChange:
    """Make `version` the live version of `project` (also how a rollback is done). The manifest records who wrote it
    (`publisher`, default: this process)."""
    check_name(project, version)
    catalog = read_catalog(store, project)
    if catalog is None:
        raise PublishError(f"{project} has never been published (no catalog/{project}.yaml)")
    if catalog.find(version) is None:
        known = ", ".join(e.version for e in catalog.entries[-10:]) or "none"
        raise PublishError(f"{project} has no published version {version} (latest: {known})")
    return _change_manifest(store, project, version, allow_empty=False, publisher=publisher)


def retire(store: ObjectStore, project: str, *, allow_empty: bool = False,
           publisher: Publisher | None = None) -> ManifestChange:
    """Remove `project` from the manifest (its history stays in the catalog)."""
    check_name(project)
    return _change_manifest(store, project, None, allow_empty=allow_empty, publisher=publisher)
