"""A progress display for large uploads, on stderr, without touching the publisher or the store.

A botocore `before-send` hook swaps a large PutObject body for a reader that reports how much of it the
HTTP connection has consumed. Retries rewind it (botocore calls `seek(0)` on a stream body)."""

from __future__ import annotations

import io
import sys
import time
from typing import Any, TextIO

PROGRESS_MIN_BYTES = 4 * 1024 * 1024  # "a few MB": below this an upload is over before a bar would help


class _Reader(io.RawIOBase):
    """Wraps the body stream botocore prepared (a BytesIO, or an aws-chunked wrapper over https) and counts
    the bytes the connection reads; a rewind for a retry starts the count again."""

    def __init__(self, inner: Any, total: int, report: Any) -> None:
        self._inner = inner
        self._total = total
        self._report = report
        self._read = 0

    def __len__(self) -> int:
        return self._total

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._read

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._inner.seek(offset, whence)
        self._read = offset if whence == io.SEEK_SET else self._read
        return self._read

    def read(self, size: int = -1) -> bytes:
        chunk = bytes(self._inner.read(size))
        self._read += len(chunk)
        self._report(min(self._read, self._total), self._total)
        return chunk


def _length(request: Any) -> int:
    headers = {k.lower(): v for k, v in dict(request.headers).items()}
    for name in ("x-amz-decoded-content-length", "content-length"):
        if name in headers:
            return int(headers[name])
    return 0


class UploadProgress:
    """Renders `uploading <what>: 12.0/48.0 MB (25%)` on one stderr line, at most ten times a second."""

    def __init__(self, label: str, stream: TextIO | None = None, min_bytes: int = PROGRESS_MIN_BYTES) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.min_bytes = min_bytes
        self._last = 0.0
        self._finished = False
        self.updates = 0

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-send.s3.PutObject", self._before_send)

    def _before_send(self, request: Any, **_: Any) -> None:
        body = request.body
        if isinstance(body, _Reader) or body is None:
            return
        if isinstance(body, bytes | bytearray):
            body = io.BytesIO(body)
            request.body = body
        if not (hasattr(body, "read") and hasattr(body, "seek")):
            return
        total = _length(request)
        if total >= self.min_bytes:
            request.body = _Reader(body, total, self.report)

    def report(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self._last < 0.1:
            return
        if done >= total and self._finished:
            return
        self._finished = done >= total
        self._last = now
        self.updates += 1
        mb = 1024 * 1024
        end = "\n" if done >= total else ""
        self.stream.write(f"\ruploading {self.label}: {done / mb:.1f}/{total / mb:.1f} MB "
                          f"({100 * done // max(total, 1)}%){end}")
        self.stream.flush()
