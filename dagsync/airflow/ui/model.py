"""What each page shows, as plain JSON documents (the /dagsync/api/... answers; the HTML pages render the same
documents). Pure: values in, documents out, no I/O."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from dagsync.core.models import CatalogEntry, HistoryEntry, ReleasedProject, ReleaseRoot

from .source import Live, ProjectRead, ReleaseRead

# An agent reconciles every 60 s even without an event, and writes its status whenever its applied state changes.
# A host still behind a release published longer ago than two such periods has stopped applying, or reporting.
SILENT_AFTER = timedelta(seconds=120)


def _at(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def release_summary(root: ReleaseRoot) -> dict[str, Any]:
    return {
        "sequence": root.sequence,
        "published_at": _at(root.published_at),
        "manifest": {"etag": root.manifest.etag, "written_by": root.manifest.written_by,
                     "written_at": _at(root.manifest.written_at)},
        "project_count": root.project_count,
        "changed": len(root.changes),
        "signed_by": root.signature.key_id if root.signature else None,
        "chain": root.chain.id,
    }


def _published(entry: CatalogEntry | None) -> dict[str, Any]:
    if entry is None:
        return {"published_at": None, "published_by": None}
    return {"published_at": _at(entry.published_at),
            "published_by": entry.publisher.describe() if entry.publisher else entry.published_by or None}


def _project(entry: ReleasedProject, published: CatalogEntry | None) -> dict[str, Any]:
    return {"version": entry.version, **_published(published), "parse_seconds": entry.parse_seconds,
            "dag_ids": list(entry.dag_ids), "sha256": entry.sha256, "files": entry.files}


def hosts_doc(live: Live) -> dict[str, dict[str, Any]]:
    """Each host by name: applied sequence, lag, last error, agent version, and a state a person can scan:
    `silent` (behind a release published more than SILENT_AFTER ago), `error`, `applying` (behind, recently),
    `in sync`; a status that cannot be read is `unreadable`."""
    view, published_at = live.view, live.root.published_at if live.root else None
    behind_for = (live.read_at - published_at) if published_at else timedelta(0)
    out: dict[str, dict[str, Any]] = {}
    for host, status in view.hosts.items():
        lag = view.lag(host)
        running = status.live(view.release)  # None: counted against another release than the live one
        state = ("silent" if lag > 0 and behind_for > SILENT_AFTER else "error" if status.last_error
                 else "applying" if lag > 0 else "in sync")
        out[host] = {"sequence": status.sequence, "lag": lag, "last_error": status.last_error,
                     "agent_version": status.agent_version, "updated_at": _at(status.updated_at),
                     "projects": None if running is None else len(running), "state": state,
                     "behind_seconds": round(behind_for.total_seconds()) if lag > 0 else 0}
    for host, why in view.unreadable.items():
        out[host] = {"sequence": None, "lag": None, "last_error": why, "agent_version": None, "updated_at": None,
                     "projects": None, "state": "unreadable", "behind_seconds": None}
    return dict(sorted(out.items()))


def status_doc(live: Live) -> dict[str, Any]:
    """/dagsync/api/status: the live release, its projects, the manifest's pending changes, the current rejection
    and the hosts."""
    view = live.view
    projects = view.release.projects if view.release else {}
    rejection = view.rejection
    return {
        "sequence": view.sequence,
        "release": release_summary(live.root) if live.root else None,
        "signature": {"checked": live.checked, "trusted": None if not live.checked else live.untrusted is None,
                      "problem": live.untrusted},
        "projects": {name: _project(entry, live.published.get(name)) for name, entry in sorted(projects.items())},
        "pending": {r.project: r.manifest for r in view.rows() if r.pending},
        "rejection": None if rejection is None else {
            "at": _at(rejection.at), "reason": rejection.reason, "errors": list(rejection.errors),
            "manifest_etag": rejection.manifest_etag},
        "hosts": hosts_doc(live),
        "read_at": _at(live.read_at),
    }


def host_page_doc(live: Live) -> dict[str, Any]:
    """/dagsync/api/hosts."""
    return {"sequence": live.view.sequence, "hosts": hosts_doc(live), "silent_after_seconds":
            int(SILENT_AFTER.total_seconds()), "read_at": _at(live.read_at)}


def release_doc(read: ReleaseRead, live: Live) -> dict[str, Any]:
    """/dagsync/api/releases/{sequence}: the release and what changed in it against the one before."""
    live_sequence = live.view.sequence
    root, before = read.root, read.before or {}
    changes = []
    for project, version in sorted(root.changes.items()):
        old, new = before.get(project), read.projects.get(project)
        kind = "retired" if version is None else "added" if old is None else "changed"
        changes.append({"project": project, "change": kind, "from": old.version if old else None, "to": version,
                        "sha256": new.sha256 if new else None, "parse_seconds": new.parse_seconds if new else None,
                        "dag_ids": list(new.dag_ids) if new else []})
    return {
        **release_summary(root),
        "live": root.sequence == live_sequence,
        "live_sequence": live_sequence,
        "previous": root.sequence - 1 if root.sequence > 1 else None,
        "previous_known": read.before is not None,
        "next": root.sequence + 1 if root.sequence < live_sequence else None,
        "changes": changes,
        "unchanged": sorted(set(read.projects) - set(root.changes)),
        "read_at": _at(live.read_at),
    }


def periods(history: list[HistoryEntry]) -> list[dict[str, Any]]:
    """The history as periods, newest first: each version from the release that made it live until the next change.
    A version that had been live before and comes back is a rollback."""
    out = []
    for i, entry in enumerate(history):
        seen = {h.version for h in history[:i]}
        after = history[i + 1] if i + 1 < len(history) else None
        out.append({"sequence": entry.sequence, "version": entry.version, "from": _at(entry.at),
                    "until": _at(after.at) if after else None, "until_sequence": after.sequence if after else None,
                    "retired": entry.version is None,
                    "rollback": entry.version is not None and entry.version in seen})
    return out[::-1]


def project_doc(read: ProjectRead, live: Live) -> dict[str, Any]:
    """/dagsync/api/projects/{project}: published versions (newest first) and when each was live."""
    entry = live.view.release.projects.get(read.project) if live.view.release else None
    version = entry.version if entry else None
    live_in: dict[str | None, list[int]] = {}
    for h in read.history:
        live_in.setdefault(h.version, []).append(h.sequence)
    return {
        "project": read.project,
        "live": version,
        "history": periods(read.history),
        "published": [{"version": e.version, **_published(e), "sha256": e.sha256, "files": e.files,
                       "parse_seconds": e.parse.seconds if e.parse else None, "dag_ids": list(e.dag_ids),
                       "live_in_releases": live_in.get(e.version, []), "live": e.version == version}
                      for e in reversed(read.entries)],
        "read_at": _at(live.read_at),
    }
