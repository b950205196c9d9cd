"""Prometheus metrics, on the agent's own registry (never the global one). Names start dagsync_agent_."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from dagsync.core import signatures

from . import AGENT_VERSION

OUTCOMES = ("success", "error", "noop")
REFUSALS = (signatures.MISSING, signatures.MALFORMED, signatures.UNTRUSTED_KEY, signatures.BAD_SIGNATURE)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.syncs = Counter("dagsync_agent_syncs", "Sync cycles by outcome.", ["outcome"], registry=r)
        for outcome in OUTCOMES:
            self.syncs.labels(outcome)
        self.sync_duration = Histogram(
            "dagsync_agent_sync_duration_seconds",
            "Time spent in one sync cycle.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=r,
        )
        self.event_to_flip = Histogram(
            "dagsync_agent_event_to_flip_seconds",
            "From the release's published_at to the symlink flip on this host.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300),
            registry=r,
        )
        self.applied_sequence = Gauge(
            "dagsync_agent_applied_sequence", "Sequence of the last release applied completely.", registry=r
        )
        self.projects_live = Gauge("dagsync_agent_projects_live", "Projects linked in the DAG folder.", registry=r)
        self.bytes_downloaded = Counter(
            "dagsync_agent_downloaded_bytes", "Archive bytes downloaded from S3.", registry=r
        )
        self.last_full_reconcile = Gauge(
            "dagsync_agent_last_full_reconcile_timestamp_seconds",
            "Unix time of the last successful full reconcile.",
            registry=r,
        )
        self.consecutive_failures = Gauge(
            "dagsync_agent_consecutive_failures", "Failed sync cycles since the last good one.", registry=r
        )
        self.unowned_entries = Gauge(
            "dagsync_agent_unowned_entries", "Entries in the DAG folder that dagsync does not own.", registry=r
        )
        self.drift_repairs = Counter(
            "dagsync_agent_drift_repairs", "Drift found and repaired, by kind (link, tree, airflowignore).", ["kind"],
            registry=r,
        )
        for kind in ("link", "tree", "airflowignore"):
            self.drift_repairs.labels(kind)
        self.trees_removed = Counter(
            "dagsync_agent_trees_removed", "Old store trees deleted by retention.", registry=r
        )
        self.queue_messages = Counter(
            "dagsync_agent_queue_messages", "Change messages received from the host queue.", registry=r
        )
        self.queue_errors = Counter("dagsync_agent_queue_errors", "Failed SQS receive/delete calls.", registry=r)
        self.releases_refused = Counter(
            "dagsync_agent_releases_refused",
            "Releases not applied, by reason: the signature (missing_signature, malformed_signature, untrusted_key, "
            "bad_signature), the shards (bad_shard, missing_shard), or older than what this host applied "
            "(older_release, older_chain).", ["reason"], registry=r,
        )
        for reason in REFUSALS:
            self.releases_refused.labels(reason)
        self.deltas = Counter(
            "dagsync_agent_deltas",
            "Change events by what became of their delta: applied (no metadata read), fallback (not the release "
            "after the one held, or no entries: release.json is read instead) or refused (not vouched for by the "
            "signed root).", ["result"], registry=r,
        )
        for result in ("applied", "fallback", "refused"):
            self.deltas.labels(result)
        self.event_looks = Counter(
            "dagsync_agent_event_looks",
            "Event cycles by how they looked at the volume: changed (only the projects the release changed: the "
            "volume held the release before exactly, and nothing moved on it since) or scan (every project).",
            ["look"], registry=r,
        )
        for look in ("changed", "scan"):
            self.event_looks.labels(look)
        self.chain_changes = Counter(
            "dagsync_agent_chain_changes",
            "Release chains this host started over from, by reason (newer_chain, other_bucket).", ["reason"],
            registry=r,
        )
        for reason in ("newer_chain", "other_bucket"):
            self.chain_changes.labels(reason)
        self.info = Info("dagsync_agent", "Agent build information.", registry=r)
        self.info.info({"version": AGENT_VERSION})
