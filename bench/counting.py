"""A moto server on 127.0.0.1 that counts what crosses it: requests and bytes per client and operation.

It is moto's own ThreadedMotoServer (werkzeug `make_server` + `DomainDispatcherApplication`) with one
WSGI middleware in front. The client is the access key id in the SigV4 `Authorization` header, so each
tool in a benchmark signs with its own key (`dagsync`, `awscli`, `airflow`, ...) and its requests are
told apart even when several run at once."""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

_CREDENTIAL = re.compile(r"Credential=([^/]+)/[^/]+/[^/]+/([^/]+)/")

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
App = Callable[[Environ, StartResponse], Iterable[bytes]]


def classify(environ: Environ) -> tuple[str, str]:
    """(client, operation) for one request; operation is e.g. `s3 GetObject`, `sqs ReceiveMessage`."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    m = _CREDENTIAL.search(auth)
    client, service = (m.group(1), m.group(2)) if m else ("anonymous", "?")
    method = environ.get("REQUEST_METHOD", "GET")
    if service != "s3":
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        return client, f"{service} {target.rsplit('.', 1)[-1] or method}"
    path = environ.get("PATH_INFO", "/").lstrip("/")
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    has_key = "/" in path and path.split("/", 1)[1] != ""
    if not has_key:
        listing = not query or any(q in query for q in ("list-type", "prefix", "marker", "delimiter"))
        op = {"GET": "ListObjects" if listing else "GetBucket" + "".join(sorted(query))[:20],
              "HEAD": "HeadBucket", "PUT": "CreateBucket"}.get(method, method + "Bucket")
    else:
        op = {"GET": "GetObject", "HEAD": "HeadObject", "PUT": "PutObject", "DELETE": "DeleteObject"}.get(
            method, method + "Object")
    return client, f"s3 {op}"


@dataclass
class Counts:
    """Requests, bytes received (request bodies) and bytes sent (response bodies) per (client, operation)."""

    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    bytes_in: Counter[tuple[str, str]] = field(default_factory=Counter)
    bytes_out: Counter[tuple[str, str]] = field(default_factory=Counter)
    statuses: Counter[tuple[str, str, str]] = field(default_factory=Counter)

    def copy(self) -> Counts:
        return Counts(Counter(self.requests), Counter(self.bytes_in), Counter(self.bytes_out), Counter(self.statuses))

    def __sub__(self, other: Counts) -> Counts:
        return Counts(self.requests - other.requests, self.bytes_in - other.bytes_in,
                      self.bytes_out - other.bytes_out, self.statuses - other.statuses)

    def for_client(self, client: str | None = None, service: str | None = None) -> Summary:
        def keep(key: tuple[str, ...]) -> bool:
            return (client is None or key[0] == client) and (service is None or key[1].startswith(service + " "))

        ops: Counter[str] = Counter()
        for key, n in self.requests.items():
            if keep(key):
                ops[key[1]] += n
        return Summary(
            requests=sum(ops.values()),
            bytes_in=sum(n for k, n in self.bytes_in.items() if keep(k)),
            bytes_out=sum(n for k, n in self.bytes_out.items() if keep(k)),
            by_operation=dict(sorted(ops.items())),
            statuses=dict(sorted(Counter({f"{k[1]} {k[2]}": n for k, n in self.statuses.items() if keep(k)}).items())),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": [[*k, n] for k, n in self.requests.items()],
            "bytes_in": [[*k, n] for k, n in self.bytes_in.items()],
            "bytes_out": [[*k, n] for k, n in self.bytes_out.items()],
            "statuses": [[*k, n] for k, n in self.statuses.items()],
        }


@dataclass(frozen=True)
class Summary:
    requests: int
    bytes_in: int
    bytes_out: int
    by_operation: dict[str, int]
    statuses: dict[str, int]

    @property
    def bytes_moved(self) -> int:
        return self.bytes_in + self.bytes_out

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "bytes_in": self.bytes_in, "bytes_out": self.bytes_out,
                "bytes_moved": self.bytes_moved, "by_operation": self.by_operation, "statuses": self.statuses}


class CountingMiddleware:
    def __init__(self, app: App) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.counts = Counts()

    def snapshot(self) -> Counts:
        with self.lock:
            return self.counts.copy()

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        client, op = classify(environ)
        key = (client, op)
        status: list[str] = ["?"]

        def recording_start(code: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            status[0] = code.split(" ", 1)[0]
            return start_response(code, headers, *args)

        sent = 0
        try:
            for chunk in self.app(environ, recording_start):
                sent += len(chunk)
                yield chunk
        finally:
            received = int(environ.get("CONTENT_LENGTH") or 0)
            with self.lock:
                self.counts.requests[key] += 1
                self.counts.bytes_in[key] += received
                self.counts.bytes_out[key] += sent
                self.counts.statuses[(client, op, status[0])] += 1


class QuietHandler(MotoRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


class CountingMotoServer:
    """moto's threaded server with the counting middleware, bound to 127.0.0.1 only."""

    def __init__(self, port: int = 0) -> None:
        self.middleware = CountingMiddleware(DomainDispatcherApplication(create_backend_app))
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.port = port

    def start(self) -> str:
        self._server = make_server("127.0.0.1", self.port, self.middleware, True,
                                   request_handler=QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto", daemon=True)
        self._thread.start()
        self.port = self._server.server_address[1]
        return self.endpoint_url

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def snapshot(self) -> Counts:
        return self.middleware.snapshot()

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
        if self._thread:
            self._thread.join(10)


def backend_put(bucket: str) -> Callable[[str, bytes], None]:
    """Write an object straight into this process's moto S3 backend (set-up only: not counted)."""
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["global"]

    def put(key: str, data: bytes) -> None:
        backend.put_object(bucket, key, data)

    return put
