"""Health and metrics over HTTP (stdlib http.server + prometheus-client).

GET /healthz  200 while the loop is alive (it beats at least once per cycle), else 503
GET /readyz   503 until the first full sync (with the last error, e.g. a release refused for its signature);
              then 200 "ok", or 200 "degraded: <error>" while syncs fail
              (the DAG folder still holds the last good state; after a restart with live projects on disk,
              ready and degraded at once)
GET /metrics  Prometheus text format, from the agent's own registry
POST /sync    ask for a full sync now (202)"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import logs
from .metrics import Metrics


class Health:
    def __init__(self, metrics: Metrics, liveness_window: float) -> None:
        self.metrics = metrics
        self.liveness_window = liveness_window
        self.ready = False
        self.degraded: str | None = None
        self._beat = time.monotonic()

    def beat(self) -> None:
        self._beat = time.monotonic()

    def alive(self) -> bool:
        return time.monotonic() - self._beat < self.liveness_window


def _handler(health: Health, on_sync: Callable[[], None]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "dagsync-agent"

        def _send(self, code: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                ok = health.alive()
                self._send(200 if ok else 503, b"ok\n" if ok else b"stalled: the sync loop has not run lately\n")
            elif path == "/readyz":
                if not health.ready:
                    why = f" (last error: {health.degraded})" if health.degraded else ""
                    self._send(503, f"not ready: waiting for the first full sync{why}\n".encode())
                elif health.degraded:
                    self._send(200, f"degraded: {health.degraded}\n".encode())
                else:
                    self._send(200, b"ok\n")
            elif path == "/metrics":
                self._send(200, generate_latest(health.metrics.registry), CONTENT_TYPE_LATEST)
            else:
                self._send(404, b"not found\n")

        def do_POST(self) -> None:
            if self.path.split("?", 1)[0] == "/sync":
                on_sync()
                self._send(202, b"sync requested\n")
            else:
                self._send(404, b"not found\n")

        def log_message(self, format: str, *args: object) -> None:
            logs.debug("http request", request=format % args)

    return Handler


class HealthServer:
    def __init__(self, address: tuple[str, int], health: Health, on_sync: Callable[[], None]) -> None:
        self.httpd = ThreadingHTTPServer(address, _handler(health, on_sync))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="health", daemon=True)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def start(self) -> HealthServer:
        self.thread.start()
        logs.info("health server listening", address=self.httpd.server_address[0], port=self.port)
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
