"""`--wait` and `--wait-hosts`: tell CI the truth about a manifest write.

Released (the release includes the change), rejected (with the reason), superseded (a later manifest write
replaced this change before or after it went live), or not yet (timeout). `--wait-hosts` then waits until
hosts report (hosts/<host>.json) that they applied that release sequence or a later one."""

from __future__ import annotations

import threading
import time

from dagsync.core import keys
from dagsync.core.documents import read_rejection, read_release
from dagsync.core.models import HostStatus, Rejection, Release
from dagsync.core.releases import ShardCache
from dagsync.core.store import ObjectStore
from dagsync.publish.change import ManifestChange
from dagsync.publish.view import host_statuses


class Rejected(Exception):
    def __init__(self, rejection: Rejection, *, superseded: bool = False) -> None:
        self.rejection = rejection
        self.superseded = superseded
        note = " (a later manifest write, which includes this change, was rejected)" if superseded else ""
        super().__init__(f"the validator rejected the manifest{note}: {rejection.reason}")


class Superseded(Exception):
    """The change was replaced by a later manifest write: what is live is not what this publisher wrote."""

    def __init__(self, change: ManifestChange, release: Release) -> None:
        self.change = change
        self.release = release
        live = release.projects.get(change.project)
        self.live_version = live.version if live else None
        wanted = change.version or "retired"
        now = self.live_version or "retired"
        super().__init__(
            f"{change.project} {wanted} is not live: a later manifest write made it {now} "
            f"(release {release.sequence}); publish or promote again if yours should win"
        )


class WaitTimeout(Exception):
    pass


class HostsLagging(WaitTimeout):
    def __init__(self, sequence: int, lagging: dict[str, str], timeout: float) -> None:
        self.sequence = sequence
        self.lagging = lagging
        detail = ", ".join(f"{host} ({why})" for host, why in sorted(lagging.items()))
        super().__init__(f"hosts did not apply release {sequence} within {timeout:g}s: {detail}")


def reflects(release: Release, change: ManifestChange) -> bool:
    live = release.projects.get(change.project)
    return (live is None) if change.version is None else (live is not None and live.version == change.version)


def _manifest_etag(store: ObjectStore) -> str | None:
    blob = store.get(keys.MANIFEST_KEY)
    return blob.etag if blob else None


def _check(store: ObjectStore, change: ManifestChange, cache: ShardCache | None = None) -> Release | None:
    """One look: the release that answers for `change`, None for "not yet"; raises Rejected or Superseded."""
    release, _ = read_release(store, cache)
    if release is not None:
        if release.manifest_etag == change.etag:
            return release
        if reflects(release, change) and (release.sequence > change.release_sequence_before or not change.changed):
            return release
    current = _manifest_etag(store)
    if release is not None and current != change.etag and release.manifest_etag == current:
        # Released from a manifest written after ours: it answers for us, whatever it says.
        if reflects(release, change):
            return release
        raise Superseded(change, release)
    rejection = read_rejection(store)
    if rejection is not None:
        if rejection.manifest_etag == change.etag:
            raise Rejected(rejection)
        if current == rejection.manifest_etag and change.changed:
            raise Rejected(rejection, superseded=True)
    return None


def wait_for_release(
    store: ObjectStore, change: ManifestChange, *, timeout: float = 120.0, poll: float = 0.1
) -> Release:
    """Return the release that includes `change`; raise Rejected, Superseded or WaitTimeout."""
    deadline = time.monotonic() + timeout
    pause = threading.Event().wait
    cache = ShardCache()  # each look reads the root, and only the shards that changed since the last look
    while True:
        release = _check(store, change, cache)
        if release is not None:
            return release
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"no release included the change within {timeout:g}s (is the validator running?)")
        pause(poll)


def _lag(status: HostStatus | str, sequence: int) -> str | None:
    if isinstance(status, str):
        return status
    if status.sequence >= sequence:
        return None
    return f"at {status.sequence}" + (f", error: {status.last_error}" if status.last_error else "")


def wait_for_hosts(
    store: ObjectStore, sequence: int, hosts: list[str] | None = None, *, timeout: float = 120.0, poll: float = 0.25
) -> dict[str, HostStatus]:
    """Wait until every named host (every host with a status file when none are named) reports `sequence`
    or later. Returns their statuses; raises HostsLagging naming the hosts still behind."""
    deadline = time.monotonic() + timeout
    pause = threading.Event().wait
    while True:
        statuses = host_statuses(store, hosts)
        lagging = {h: why for h, s in statuses.items() if (why := _lag(s, sequence)) is not None}
        if not lagging:
            return {h: s for h, s in statuses.items() if isinstance(s, HostStatus)}
        if time.monotonic() >= deadline:
            raise HostsLagging(sequence, lagging, timeout)
        pause(poll)
