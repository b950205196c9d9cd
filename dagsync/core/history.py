"""What was live when: one marker object per change of a project's live version, written by the validator after
each release (dagsync.core.keys.history_marker). A listing of the project's prefix is its whole history: no
document is read and rewritten, so recording costs one PUT per changed project.

The release is the truth; history is a record for people and for `dagsync rollback` (the version live before the
current one). It is written after the release, so a crash in between can lose the newest entry; readers therefore
always compare with the current release instead of trusting the last entry."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from dagsync.core import keys
from dagsync.core.models import HistoryEntry
from dagsync.core.store import ObjectStore

log = logging.getLogger(__name__)


def read_history(store: ObjectStore, project: str) -> list[HistoryEntry]:
    """The project's history, oldest first."""
    entries = []
    for listed in store.list_objects(keys.history_prefix(project)):
        parsed = keys.parse_history_marker(listed.key)
        if parsed is not None:
            entries.append(HistoryEntry(sequence=parsed[0], version=parsed[1], at=listed.last_modified))
    return sorted(entries, key=lambda e: e.sequence)


def record(store: ObjectStore, sequence: int, changes: Mapping[str, str | None]) -> None:
    """One marker per changed project. O(changed) requests; never raises (history is best effort)."""
    for project, version in sorted(changes.items()):
        try:
            store.put(keys.history_marker(project, sequence, version), b"", content_type="text/plain")
        except Exception:  # the release is already written and announced; do not fail the run for a record
            log.warning("could not record history for %s", project, exc_info=True)


def live_before(history: list[HistoryEntry], current: str | None) -> str | None:
    """The newest version live before `current` (skipping `current` itself and retirements)."""
    entries = list(history)
    # Ignore the tail that is the current version: the newest entry may be it, or may be missing.
    while entries and entries[-1].version in (current, None):
        entries.pop()
    return entries[-1].version if entries else None
