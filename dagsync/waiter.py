"""`--wait`: tell CI the truth about a manifest write: released, rejected (with the reason), or not yet."""

from __future__ import annotations

import threading
import time

from dagsync import keys
from dagsync.documents import read_rejection, read_release
from dagsync.models import Rejection, Release
from dagsync.publisher import ManifestChange
from dagsync.store import ObjectStore


class Rejected(Exception):
    def __init__(self, rejection: Rejection, *, superseded: bool = False) -> None:
        self.rejection = rejection
        self.superseded = superseded
        note = " (a later manifest write, which includes this change, was rejected)" if superseded else ""
        super().__init__(f"the validator rejected the manifest{note}: {rejection.reason}")


class WaitTimeout(Exception):
    pass


def reflects(release: Release, change: ManifestChange) -> bool:
    live = release.projects.get(change.project)
    return (live is None) if change.version is None else (live is not None and live.version == change.version)


def wait_for_release(
    store: ObjectStore, change: ManifestChange, *, timeout: float = 120.0, poll: float = 0.1
) -> Release:
    """Return the release that includes `change`; raise Rejected or WaitTimeout."""
    deadline = time.monotonic() + timeout
    pause = threading.Event().wait
    while True:
        release, _ = read_release(store)
        if release is not None:
            if release.manifest_etag == change.etag:
                return release
            if reflects(release, change) and (release.sequence > change.release_sequence_before or not change.changed):
                return release
        rejection = read_rejection(store)
        if rejection is not None:
            if rejection.manifest_etag == change.etag:
                raise Rejected(rejection)
            current = store.get(keys.MANIFEST_KEY)
            if current is not None and current.etag == rejection.manifest_etag and change.changed:
                raise Rejected(rejection, superseded=True)
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"no release included the change within {timeout:g}s (is the validator running?)")
        pause(poll)
