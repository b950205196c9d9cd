"""One view of a deployment: the manifest (intent), the release (validated), the current rejection and what each
host reports (applied). `dagsync status` and `dagsync diff` both render it; neither reads the bucket itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dagsync.core import keys
from dagsync.core.documents import read_manifest, read_rejection, read_release
from dagsync.core.models import HostStatus, Manifest, Rejection, Release
from dagsync.core.releases import ShardCache
from dagsync.core.serde import DocumentError, load_json
from dagsync.core.store import ObjectStore


def host_statuses(store: ObjectStore, hosts: list[str] | None = None) -> dict[str, HostStatus | str]:
    """hosts/<host>.json for the named hosts (all present when None); a string says why one is unusable."""
    names = hosts if hosts else [k.removeprefix(keys.HOSTS_PREFIX).removesuffix(".json")
                                 for k in store.list_keys(keys.HOSTS_PREFIX) if k.endswith(".json")]
    out: dict[str, HostStatus | str] = {}
    for host in names:
        blob = store.get(keys.host_status_key(host))
        if blob is None:
            out[host] = "no status reported"
            continue
        try:
            out[host] = load_json(HostStatus, blob.data, keys.host_status_key(host))
        except DocumentError as exc:
            out[host] = f"unreadable status: {exc}"
    return out


@dataclass(frozen=True)
class ProjectRow:
    project: str
    manifest: str | None
    release: str | None
    hosts: dict[str, str | None]

    @property
    def pending(self) -> bool:
        return self.manifest != self.release

    @property
    def hosts_differ(self) -> list[str]:
        return sorted(h for h, v in self.hosts.items() if v != self.release)


@dataclass(frozen=True)
class DeploymentView:
    manifest: Manifest | None
    release: Release | None
    rejection: Rejection | None  # only when it is about the current manifest
    hosts: dict[str, HostStatus] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)  # host -> why its status cannot be used

    @property
    def sequence(self) -> int:
        return self.release.sequence if self.release else 0

    def lag(self, host: str) -> int:
        return self.sequence - self.hosts[host].sequence

    @property
    def lagging(self) -> dict[str, int]:
        return {h: s.sequence for h, s in self.hosts.items() if s.sequence < self.sequence}

    def rows(self) -> list[ProjectRow]:
        wanted = dict(self.manifest.projects) if self.manifest else {}
        released = {n: p.version for n, p in self.release.projects.items()} if self.release else {}
        live = {h: s.live(self.release) or {} for h, s in sorted(self.hosts.items())}
        names = set(wanted) | set(released) | {p for versions in live.values() for p in versions}
        return [
            ProjectRow(name, wanted.get(name), released.get(name), {h: v.get(name) for h, v in live.items()})
            for name in sorted(names)
        ]

    @property
    def in_sync(self) -> bool:
        rows = self.rows()
        return not any(r.pending or r.hosts_differ for r in rows) and not self.lagging and not self.rejection


def read_view(store: ObjectStore, shards: ShardCache | None = None) -> DeploymentView:
    """`shards`: a cache kept between reads (the Airflow UI's), so an unchanged shard is not fetched again."""
    manifest, manifest_etag = read_manifest(store)
    release, _ = read_release(store, shards)
    rejection = read_rejection(store)
    statuses = host_statuses(store)
    return DeploymentView(
        manifest=manifest,
        release=release,
        rejection=rejection if rejection and rejection.manifest_etag == manifest_etag else None,
        hosts={h: s for h, s in sorted(statuses.items()) if isinstance(s, HostStatus)},
        unreadable={h: s for h, s in sorted(statuses.items()) if isinstance(s, str)},
    )


def status_doc(view: DeploymentView) -> dict[str, Any]:
    """`dagsync status --json`."""
    return {
        "manifest": view.manifest.model_dump(mode="json")["projects"] if view.manifest else None,
        "release": view.release.model_dump(mode="json") if view.release else None,
        "rejection": view.rejection.model_dump(mode="json") if view.rejection else None,
        "hosts": [{**s.model_dump(mode="json"), "lag": view.lag(h)} for h, s in view.hosts.items()]
        + [{"host": h, "problem": why} for h, why in view.unreadable.items()],
    }


def diff_doc(view: DeploymentView) -> dict[str, Any]:
    """`dagsync diff --json`."""
    return {
        "in_sync": view.in_sync,
        "release_sequence": view.sequence,
        "rejection": view.rejection.model_dump(mode="json") if view.rejection else None,
        "hosts": {h: {"sequence": s.sequence, "last_error": s.last_error} for h, s in view.hosts.items()},
        "unreadable_hosts": dict(view.unreadable),
        "lagging_hosts": view.lagging,
        "projects": [
            {"project": r.project, "manifest": r.manifest, "release": r.release, "hosts": r.hosts,
             "pending": r.pending, "hosts_differ": r.hosts_differ}
            for r in view.rows()
        ],
    }


# Airflow's [dag_processor] min_file_process_interval default: every file is parsed again about this often.
PARSE_INTERVAL_S = 30.0


def parse_cost_doc(release: Release | None) -> dict[str, Any]:
    """`dagsync status --parse-cost`: the live projects by the parse time their catalog entries recorded, costliest
    first (those published without Airflow last, unmeasured), and what that costs a DAG processor."""
    projects = release.projects if release else {}
    rows = sorted(projects.items(), key=lambda kv: (kv[1].parse_seconds is None, -(kv[1].parse_seconds or 0), kv[0]))
    total = sum(p.parse_seconds or 0.0 for p in projects.values())
    return {
        "release_sequence": release.sequence if release else 0,
        "parse_interval_seconds": PARSE_INTERVAL_S,
        "total_seconds": round(total, 3),
        "core_share": round(total / PARSE_INTERVAL_S, 4),
        "measured": sum(1 for p in projects.values() if p.parse_seconds is not None),
        "projects": [
            {"project": name, "version": p.version, "parse_seconds": p.parse_seconds, "dag_ids": len(p.dag_ids),
             "core_share": None if p.parse_seconds is None else round(p.parse_seconds / PARSE_INTERVAL_S, 4)}
            for name, p in rows
        ],
    }
