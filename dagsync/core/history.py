"""What was live when: status/history/<project>.json, appended by the validator after each release.

The release is the truth; history is a record for people and for `dagsync rollback` (the version live
before the current one). It is written after the release, so a crash in between can lose the newest
entry; readers therefore always compare with the current release instead of trusting the last entry."""

from __future__ import annotations

import logging

from dagsync.core import keys
from dagsync.core.documents import JSON, update
from dagsync.core.models import HistoryEntry, ProjectHistory, Release
from dagsync.core.serde import DocumentError, dump_json, load_json
from dagsync.core.store import Blob, ObjectStore

log = logging.getLogger(__name__)
KEEP_ENTRIES = 200


def read_history(store: ObjectStore, project: str) -> ProjectHistory:
    blob = store.get(keys.history_key(project))
    if blob is None:
        return ProjectHistory(project=project)
    return load_json(ProjectHistory, blob.data, keys.history_key(project))


def record(store: ObjectStore, release: Release, changed: list[str]) -> None:
    """Append one entry per changed project. O(changed) requests; never raises (history is best effort)."""
    for project in changed:
        live = release.projects.get(project)
        entry = HistoryEntry(
            sequence=release.sequence,
            version=live.version if live else None,
            sha256=live.sha256 if live else None,
            at=release.published_at,
        )

        def change(blob: Blob | None, entry: HistoryEntry = entry, project: str = project) -> bytes | None:
            history = ProjectHistory(project=project)
            if blob is not None:
                try:
                    history = load_json(ProjectHistory, blob.data, keys.history_key(project))
                except DocumentError as exc:
                    log.warning("history unreadable, starting it again: %s", exc)
            if any(e.sequence >= entry.sequence for e in history.entries[-1:]):
                return None  # a concurrent run already recorded this release (or a later one)
            entries = [*history.entries, entry][-KEEP_ENTRIES:]
            return dump_json(ProjectHistory(project=project, entries=entries))

        try:
            update(store, keys.history_key(project), change, content_type=JSON)
        except Exception:  # the release is already written and announced; do not fail the run for a record
            log.warning("could not record history for %s", project, exc_info=True)


def live_before(history: ProjectHistory, current: str | None) -> str | None:
    """The newest version live before `current` (skipping `current` itself and retirements)."""
    entries = list(history.entries)
    # Ignore the tail that is the current version: the newest entry may be it, or may be missing.
    while entries and entries[-1].version in (current, None):
        entries.pop()
    return entries[-1].version if entries else None
