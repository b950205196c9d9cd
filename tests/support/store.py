"""The fake object store: dagsync.core.store.ObjectStore in memory, with S3's conditional semantics."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import BinaryIO

from dagsync.core.store import Blob, Listed, NotModified, ObjectNotFound, PreconditionFailed


class FakeStore:
    """ObjectStore in memory, answering as S3 does:

    - `put` with `if_none_match="*"` fails (412: PreconditionFailed) when the key exists; with `if_match` when the
      key is missing or its ETag differs. The ETag is the MD5 of the bytes, so identical content has the same one.
    - `get(..., if_none_match=etag)` raises NotModified (304) when the ETag is still that; a missing key is None.
    - `download` of a missing key raises ObjectNotFound.

    `fail` makes every call raise (S3 unreachable). `gets`, `downloads` and `puts` record the keys asked for (a put
    refused with 412 is in `refused`, not in `puts`). `race(key, action)` runs `action` once, just before the next
    put of `key` is checked: another writer getting in between someone's read and their conditional write."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.etags: dict[str, str] = {}
        self.fail: Exception | None = None
        self.gets: list[str] = []
        self.downloads: list[str] = []
        self.puts: list[str] = []
        self.refused: list[str] = []
        self.modified: dict[str, datetime] = {}  # as S3's LastModified
        self._races: dict[str, Callable[[], object]] = {}

    def _check(self) -> None:
        if self.fail is not None:
            raise self.fail

    def race(self, key: str, action: Callable[[], object]) -> None:
        self._races[key] = action

    def get(self, key: str, *, if_none_match: str | None = None) -> Blob | None:
        self._check()
        self.gets.append(key)
        if key not in self.objects:
            return None
        if if_none_match and if_none_match == self.etags[key]:
            raise NotModified(key)
        return Blob(self.objects[key], self.etags[key])

    def put(self, key: str, data: bytes, *, if_match: str | None = None, if_none_match: str | None = None,
            content_type: str = "application/octet-stream") -> str:
        self._check()
        if key in self._races:
            self._races.pop(key)()
        if if_none_match not in (None, "*"):
            raise NotImplementedError("S3 supports only If-None-Match: * on PUT (501)")
        exists = key in self.objects
        if (if_none_match and exists) or (if_match and (not exists or self.etags[key] != if_match)):
            self.refused.append(key)
            raise PreconditionFailed(key)
        self.puts.append(key)
        self.objects[key] = bytes(data)
        self.etags[key] = f'"{hashlib.md5(data).hexdigest()}"'
        self.modified[key] = datetime.now(UTC)
        return self.etags[key]

    def download(self, key: str, fileobj: BinaryIO, *, on_bytes: Callable[[int], None] | None = None) -> None:
        self._check()
        self.downloads.append(key)
        if key not in self.objects:
            raise ObjectNotFound(key)
        data = self.objects[key]
        fileobj.write(data)
        if on_bytes:
            on_bytes(len(data))

    def list_keys(self, prefix: str) -> list[str]:
        self._check()
        return sorted(k for k in self.objects if k.startswith(prefix))

    def list_objects(self, prefix: str) -> list[Listed]:
        # A test may set objects directly, without a put: such an object is as new as the listing.
        return [Listed(key, self.modified.get(key, datetime.now(UTC))) for key in self.list_keys(prefix)]

    def delete(self, key: str) -> None:
        self._check()
        self.objects.pop(key, None)
        self.etags.pop(key, None)
