"""The health server: /healthz, /readyz, /metrics, POST /sync."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from dagsync.agent.health import Health, HealthServer
from dagsync.agent.metrics import Metrics


@pytest.fixture
def served() -> Iterator[tuple[Health, HealthServer, list[int]]]:
    health = Health(Metrics(), liveness_window=300)
    requested: list[int] = []
    server = HealthServer(("127.0.0.1", 0), health, lambda: requested.append(1)).start()
    yield health, server, requested
    server.stop()


def fetch(server: HealthServer, path: str, method: str = "GET") -> tuple[int, str]:
    req = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_readyz_follows_the_first_full_sync_and_degrades(served: tuple[Health, HealthServer, list[int]]) -> None:
    health, server, _ = served
    assert fetch(server, "/readyz")[0] == 503
    health.ready = True
    assert fetch(server, "/readyz") == (200, "ok\n")
    health.degraded = "EndpointConnectionError: s3 unreachable"
    code, body = fetch(server, "/readyz")
    assert code == 200 and body.startswith("degraded:") and "s3 unreachable" in body


def test_healthz_fails_when_the_loop_stops_beating(served: tuple[Health, HealthServer, list[int]]) -> None:
    health, server, _ = served
    assert fetch(server, "/healthz") == (200, "ok\n")
    health.liveness_window = 0.0
    assert fetch(server, "/healthz")[0] == 503


def test_metrics_use_the_agent_names(served: tuple[Health, HealthServer, list[int]]) -> None:
    health, server, _ = served
    health.metrics.syncs.labels("success").inc()
    code, body = fetch(server, "/metrics")
    assert code == 200
    for name in ("dagsync_agent_syncs_total{outcome=\"success\"} 1.0", "dagsync_agent_sync_duration_seconds_bucket",
                 "dagsync_agent_event_to_flip_seconds_bucket", "dagsync_agent_applied_sequence",
                 "dagsync_agent_projects_live", "dagsync_agent_downloaded_bytes_total",
                 "dagsync_agent_last_full_reconcile_timestamp_seconds", "dagsync_agent_consecutive_failures",
                 "dagsync_agent_unowned_entries", "dagsync_agent_drift_repairs_total"):
        assert name in body
    assert "python_gc_objects_collected_total" not in body  # its own registry, not the global one


def test_post_sync_requests_a_sync(served: tuple[Health, HealthServer, list[int]]) -> None:
    _, server, requested = served
    assert fetch(server, "/sync", "POST")[0] == 202 and requested == [1]
    assert fetch(server, "/nope")[0] == 404


def test_readyz_before_the_first_sync_says_why_it_is_not_ready(served: tuple[Health, HealthServer, list[int]]) -> None:
    # Given a fresh host whose first sync failed because the release was refused
    health, server, _ = served
    health.degraded = "release.json refused: it has no signature; nothing changed on disk"
    # When /readyz is asked / Then it is not ready, and says why
    code, body = fetch(server, "/readyz")
    assert code == 503 and "waiting for the first full sync" in body and "it has no signature" in body
