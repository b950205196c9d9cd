"""Workflow logic behind `dagsync rollback`, `history`, `diff` and `validate`. No printing: the CLI formats.

Rollback target (when --to is not given): the version that was live before the current one, read from
status/history/<project>.json (written by the validator on every release). When that history has nothing
older (a bucket released before history existed), the catalog is the fallback: the newest version
published before the live one. Either way the target must still be in the catalog, and the rollback is an
ordinary promote through the validator, so it meets the same gate as any publish."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagsync.core import keys
from dagsync.core.archive import DEFAULT_LIMITS, UnsafeArchive, iter_members
from dagsync.core.dagcheck import duplicate_dag_ids, inspect_members
from dagsync.core.documents import read_catalog, read_manifest, read_release
from dagsync.core.history import live_before, read_history
from dagsync.core.models import Manifest, Publisher
from dagsync.core.serde import DocumentError, load_yaml
from dagsync.core.store import ObjectStore
from dagsync.publish.change import ManifestChange
from dagsync.publish.content import AST_ONLY, AirflowUnavailable, Checks, package
from dagsync.publish.publisher import PublishError, check_name, promote


def live_version(store: ObjectStore, project: str) -> str | None:
    """The version of `project` in release.json, None when it is not live."""
    release, _ = read_release(store)
    live = release.projects.get(project) if release else None
    return live.version if live else None


def rollback_target(store: ObjectStore, project: str) -> tuple[str | None, str]:
    """(live version, version to roll back to)."""
    check_name(project)
    live = live_version(store, project)
    if live is None:
        raise PublishError(f"{project} is not live; use `dagsync promote {project} VERSION` to bring it back")
    target = live_before(read_history(store, project), live)
    if target is None:
        catalog = read_catalog(store, project)
        versions = [e.version for e in catalog.entries] if catalog else []
        older = versions[: versions.index(live)] if live in versions else []
        target = older[-1] if older else None
    if target is None:
        raise PublishError(f"{project} has no earlier version to roll back to (live: {live}); pass --to VERSION")
    return live, target


def rollback(store: ObjectStore, project: str, to: str | None = None, *,
             publisher: Publisher | None = None) -> tuple[str | None, str, ManifestChange]:
    if to is None:
        live, target = rollback_target(store, project)
    else:
        live, target = live_version(store, project), to
    return live, target, promote(store, project, target, publisher=publisher)


def history_report(store: ObjectStore, project: str) -> dict[str, Any]:
    """Published versions (catalog) and when each was live (history), newest first."""
    check_name(project)
    catalog = read_catalog(store, project)
    if catalog is None:
        raise PublishError(f"{project} has never been published (no catalog/{project}.yaml)")
    history = read_history(store, project)
    manifest, _ = read_manifest(store)
    live = live_version(store, project)
    live_at: dict[str, list[int]] = {}
    for h in history:
        if h.version:
            live_at.setdefault(h.version, []).append(h.sequence)
    return {
        "project": project,
        "live": live,
        "manifest": manifest.projects.get(project) if manifest else None,
        "published": [
            {"version": e.version, "published_at": e.published_at.isoformat(), "published_by": e.published_by,
             "publisher": e.publisher.model_dump(mode="json") if e.publisher else None,
             "sha256": e.sha256, "size": e.size, "files": e.files, "dag_ids": e.dag_ids,
             "parse_seconds": e.parse.seconds if e.parse else None,
             "airflow_version": e.parse.airflow_version if e.parse else None,
             "live_in_releases": live_at.get(e.version, []), "live": e.version == live}
            for e in reversed(catalog.entries)
        ],
        "releases": [
            {"sequence": h.sequence, "version": h.version, "at": h.at.isoformat() if h.at else None}
            for h in reversed(history)
        ],
    }


@dataclass
class Validation:
    path: str
    kind: str  # "manifest" | "dags" | "archive"
    errors: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "ok": self.ok, "errors": self.errors, **self.details}


def validate_path(path: Path, store: ObjectStore | None = None, checks: Checks = AST_ONLY,
                  project: str | None = None) -> Validation:
    """The gate's rules, offline: a DAG folder (parsed with Airflow's DagBag when `checks` names an interpreter, as
    project `project`, by default the folder's name), an archive (.tar.gz) or a manifest file.
    With a store, a manifest's versions are also checked against the catalogs, and their dag_ids together."""
    if path.is_dir():
        return _validate_dags(path, checks, project or path.resolve().name)
    if path.name.endswith((".tar.gz", ".tgz")):
        return _validate_archive(path)
    return _validate_manifest(path, store)


def _validate_dags(path: Path, checks: Checks, project: str) -> Validation:
    result = Validation(str(path), "dags")
    try:
        if checks.airflow:  # Airflow parses it as <dags>/<project>, as a host would
            _check_project_name(project)
        checked = package(path, project, checks)
    except AirflowUnavailable:
        raise  # not a verdict on the folder: the command fails (exit 1)
    except PublishError as exc:
        result.errors.extend(exc.problems)
        result.details = {"checked_with": {"parser": "airflow" if checks.airflow else "ast"}}
        return result
    built = checked.built
    result.details = {"files": built.files, "size": built.size, "uncompressed_size": built.uncompressed_size,
                      "sha256": built.sha256, "dag_ids": checked.dag_ids, "checked_with": checked.checked_with,
                      "checked_with_text": checked.checked_with_text, "warnings": checked.warnings,
                      "parse": checked.parse.model_dump(mode="json") if checked.parse else None}
    return result


def _check_project_name(project: str) -> None:
    try:
        check_name(project)
    except PublishError as exc:
        raise PublishError(f"{exc} (the folder's name, unless --project names the project)") from None


def _validate_archive(path: Path) -> Validation:
    result = Validation(str(path), "archive")
    if path.stat().st_size > DEFAULT_LIMITS.max_compressed_bytes:
        result.errors.append(f"archive is {path.stat().st_size} bytes; the limit is "
                             f"{DEFAULT_LIMITS.max_compressed_bytes}")
        return result
    try:
        report = inspect_members(iter_members(io.BytesIO(path.read_bytes())))
    except UnsafeArchive as exc:
        result.errors.append(f"unsafe archive: {exc}")
        return result
    result.errors.extend(report.errors)
    result.details = {"files": report.files, "uncompressed_size": report.uncompressed_size,
                      "dag_ids": report.dag_ids}
    return result


def _validate_manifest(path: Path, store: ObjectStore | None) -> Validation:
    result = Validation(str(path), "manifest")
    try:
        manifest = load_yaml(Manifest, path.read_bytes(), path.name)
    except DocumentError as exc:
        result.errors.append(str(exc))
        return result
    result.details = {"projects": dict(manifest.projects), "checked_against_bucket": store is not None}
    if store is None:
        return result
    declared: dict[str, list[str]] = {}
    for project, version in manifest.projects.items():
        try:
            catalog = read_catalog(store, project)
        except DocumentError as exc:
            result.errors.append(f"{project} {version}: {exc}")
            continue
        entry = catalog.find(version) if catalog else None
        if entry is None:
            result.errors.append(f"{project} {version}: not in {keys.catalog_key(project)}")
            continue
        declared[project] = entry.dag_ids
    result.errors.extend(duplicate_dag_ids(declared))
    return result
