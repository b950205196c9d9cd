"""A moto server in this process, on the loopback interface only."""

from __future__ import annotations

import threading
import urllib.request
from types import TracebackType

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

LOOPBACK = "127.0.0.1"


class LoopbackMoto:
    """moto's server on 127.0.0.1: on a free port, or on `port`. `stop()` is an outage of every service at once
    (the socket is closed: connections are refused); `start()` again serves on the same port, and moto's state
    (buckets, queues, topics: global to this process) is still there, as a real service's would be. `reset()`
    empties that state; `close()` resets and stops. As a context manager: started on entry, closed on exit."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        if not self.port:
            raise RuntimeError("the moto server has not been started yet: its port is not known")
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> str:
        """Serve (again, on the same port once one was chosen); returns the endpoint URL."""
        if self._server is None:
            app = DomainDispatcherApplication(create_backend_app)
            self._server = make_server(LOOPBACK, self.port, app, threaded=True, request_handler=MotoRequestHandler)
            self.port = int(self._server.server_port)
            self._thread = threading.Thread(target=self._server.serve_forever, name=f"moto-{self.port}", daemon=True)
            self._thread.start()
        return self.endpoint

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def restart(self) -> str:
        self.stop()
        return self.start()

    def reset(self) -> None:
        """Forget every bucket, queue and topic (moto's state is global to this process)."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        urllib.request.urlopen(request, timeout=30).close()

    def close(self) -> None:
        """Empty moto's state (when the server is up) and stop: nothing is left for whoever uses moto next."""
        try:
            if self.running:
                self.reset()
        finally:
            self.stop()

    def __enter__(self) -> LoopbackMoto:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
