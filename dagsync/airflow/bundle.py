"""DagsyncBundle: Airflow 3's versioned DAG bundle over the DAG folder a dagsync agent keeps.

The version is the release sequence. The DAG processor (version None) parses `<dag_bundle_storage_path>/<name>/live`,
a link that refresh() points at the release view the agent made current (`<dags_dir>/.dagsync/current`), and reads
the version from that same link: local state only, never the network, and never an exception out of
get_current_version() (one would stop the DAG processor). A task (version N) gets
release N at `<dag_bundle_storage_path>/<name>/versions/<N>`, made by `materialize` from the host's store or from
the bucket; a release that cannot be made available reschedules the task with the reason in its log."""

from __future__ import annotations

import logging
import os
import weakref
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

from airflow.configuration import conf
from airflow.dag_processing.bundles.base import BaseDagBundle, BundleVersion
from airflow.exceptions import AirflowRescheduleException

from dagsync.agent import views
from dagsync.agent.volume import Volume

from .materialize import Unavailable, materialize
from .settings import DEFAULT_LOCK_TIMEOUT, DEFAULT_REFRESH_INTERVAL, DEFAULT_RESCHEDULE_SECONDS, BundleSettings
from .ui.plugin import PREFIX

log = logging.getLogger(__name__)
NO_RELEASE = "0"  # the version before the agent applied any release on this host
LIVE = "live"  # <dag_bundle_storage_path>/<name>/live: the DAG processor's path
RELEASE_PAGE = f"{PREFIX}/releases/{{version}}"  # the DAG deploys page of release {version}


class ReleaseUnavailable(AirflowRescheduleException):  # type: ignore[misc]
    """The task's release cannot be made available on this host now: Airflow reschedules the task."""

    def __init__(self, reschedule_date: datetime, reason: str = "") -> None:
        super().__init__(reschedule_date=reschedule_date)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.reason} (rescheduled for {self.reschedule_date.isoformat()})"


class DagsyncBundle(BaseDagBundle):  # type: ignore[misc]
    """`{"name": "dagsync", "classpath": "dagsync.airflow.DagsyncBundle", "kwargs": {"dags_dir": "/opt/airflow/dags"}}`

    Optional kwargs: `bucket`, `endpoint_url`, `region`, `trusted_keys` (default: the agent's DAGSYNC_BUCKET,
    DAGSYNC_ENDPOINT_URL, AWS_REGION, DAGSYNC_TRUSTED_KEYS), `refresh_interval` (default 1 s), `lock_timeout`
    (300 s), `reschedule_seconds` (30 s)."""

    supports_versioning = True

    def __init__(self, *, dags_dir: str, bucket: str | None = None, endpoint_url: str | None = None,
                 region: str | None = None, trusted_keys: str | None = None,
                 refresh_interval: int = DEFAULT_REFRESH_INTERVAL,
                 lock_timeout: float = DEFAULT_LOCK_TIMEOUT, reschedule_seconds: int = DEFAULT_RESCHEDULE_SECONDS,
                 **kwargs: Any) -> None:
        super().__init__(refresh_interval=refresh_interval, **kwargs)
        self.settings = BundleSettings(dags_dir=Path(dags_dir), bucket=bucket, endpoint_url=endpoint_url,
                                       region=region, trusted_keys=trusted_keys, lock_timeout=lock_timeout,
                                       reschedule_seconds=reschedule_seconds)
        self.volume = Volume(self.settings.dags_dir)
        self._known = BundleVersion(version=NO_RELEASE, data=version_data(0, {}))

    @property
    def path(self) -> Path:
        if self.version is None:
            return self.live_path
        return Path(self.versions_dir) / str(self.version)

    @property
    def live_path(self) -> Path:
        """The DAG processor's path: a link to the agent's view of the release this processor is on. Flipped only by
        refresh(), inside Airflow's refresh tick, right before get_current_version() is asked: a parse that starts
        after the tick reads the release the version names (the agent's own `current` flips at any moment)."""
        return Path(self.base_dir) / LIVE

    def initialize(self) -> None:
        if self.version is not None and not self.is_initialized:
            self._materialize(self._sequence(str(self.version)))
        elif self.version is None:
            self.refresh()
        super().initialize()

    def refresh(self) -> None:
        """Point the processor's path at the release the agent made current (local disk only, no network)."""
        if self.version is not None:
            return
        sequence = views.current_sequence(self.volume)
        if sequence is None or sequence == _sequence_of(self.live_path):
            return
        target = os.fspath(views.view_path(self.volume, sequence))
        if not os.path.isdir(target):
            log.warning("dagsync: %s names release %s, whose view is not there; staying on %s",
                        views.current_path(self.volume), sequence, _sequence_of(self.live_path))
            return
        self.live_path.parent.mkdir(parents=True, exist_ok=True)
        views.replace_link(self.live_path, target)

    def view_url_template(self) -> str | None:
        """Each DAG version in Airflow's UI links to the page of the release that brought it (the DAG deploys pages,
        dagsync.airflow.ui), under Airflow's `[api] base_url`; no link when that is not set (Airflow takes absolute
        http(s) links only). A `view_url_template` kwarg wins."""
        if self._view_url_template:
            return str(self._view_url_template)
        base = conf.get("api", "base_url", fallback=None)
        return f"{base.rstrip('/')}{RELEASE_PAGE}" if base else None

    def get_current_version(self) -> BundleVersion:
        """The release the processor's path shows; on any error the last one known; "0" before there is any.
        Never raises (an exception here stops the DAG processor) and never returns None (Airflow 3.3.2 caches None
        as "not read yet" and then misses the first real version)."""
        if self.version is not None:
            return BundleVersion(version=str(self.version))
        try:
            sequence = _sequence_of(self.live_path)
            if sequence is not None and self._known.version != str(sequence):
                trees = views.read_view(self.live_path)
                self._known = BundleVersion(version=str(sequence), data=version_data(sequence, trees))
        except Exception:
            log.warning("dagsync: could not read the release at %s; keeping version %s", self.live_path,
                        self._known.version, exc_info=True)
        return self._known

    def _sequence(self, version: str) -> int:
        if not version.isdigit():
            self._reschedule(f"bundle version {version!r} is not a dagsync release sequence")
        return int(version)

    def _materialize(self, sequence: int) -> None:
        try:
            done = materialize(self.volume, self.path, sequence, self.settings.remote,
                               lock_timeout=self.settings.lock_timeout)
        except Unavailable as exc:
            self._reschedule(str(exc))
        # The hold lasts as long as this bundle object: the task runner keeps it for the whole task.
        weakref.finalize(self, os.close, done.hold)
        log.info("dagsync: release %s at %s (%d projects; from the bucket: %s)", sequence, self.path,
                 len(done.trees), ", ".join(done.fetched) or "none")

    def _reschedule(self, reason: str) -> NoReturn:
        when = datetime.now(UTC) + timedelta(seconds=self.settings.reschedule_seconds)
        log.error("dagsync: %s; the task is rescheduled for %s", reason, when.isoformat())
        raise ReleaseUnavailable(when, reason)


def _sequence_of(link: Path) -> int | None:
    """The release a processor link points at (…/views/<N>), or None."""
    try:
        name = os.path.basename(os.readlink(link))
    except OSError:
        return None
    return int(name) if name.isdigit() else None


def version_data(sequence: int, trees: dict[str, str]) -> dict[str, Any]:
    """What Airflow stores with each DAG version (dag_version.version_data): the release and each project's tree
    (`<version>-<sha12>`: the project's version and the first 12 digits of its archive's sha256)."""
    return {"release": sequence, "projects": dict(sorted(trees.items()))}
