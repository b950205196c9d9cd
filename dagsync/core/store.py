"""A small object-store seam over S3: conditional reads and writes, nothing more.

The protocol is what publisher, validator and agent depend on; `S3Store` is the boto3 adapter and
tests may pass any other implementation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO, Protocol

from botocore.exceptions import ClientError


class PreconditionFailed(Exception):
    """A conditional write lost a race (HTTP 412): someone else wrote first."""


class NotModified(Exception):
    """A conditional read found the object unchanged (HTTP 304)."""


class ObjectNotFound(KeyError):
    """`download` of a key that does not exist (`get` returns None instead)."""


@dataclass(frozen=True)
class Blob:
    data: bytes
    etag: str


@dataclass(frozen=True)
class Listed:
    key: str
    last_modified: datetime


class ObjectStore(Protocol):
    def get(self, key: str, *, if_none_match: str | None = None) -> Blob | None: ...

    def put(
        self,
        key: str,
        data: bytes,
        *,
        if_match: str | None = None,
        if_none_match: str | None = None,
        content_type: str = "application/octet-stream",
    ) -> str: ...

    def download(self, key: str, fileobj: BinaryIO, *, on_bytes: Callable[[int], None] | None = None) -> None: ...

    def list_keys(self, prefix: str) -> list[str]: ...

    def list_objects(self, prefix: str) -> list[Listed]: ...

    def delete(self, key: str) -> None: ...


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _missing(exc: ClientError) -> bool:
    return _code(exc) in ("NoSuchKey", "404") or _status(exc) == 404


class S3Store:
    """ObjectStore over one bucket."""

    OPERATIONS = ("GetObject", "PutObject", "ListObjectsV2", "DeleteObject")  # every S3 call it makes

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def get(self, key: str, *, if_none_match: str | None = None) -> Blob | None:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if if_none_match:
            kwargs["IfNoneMatch"] = if_none_match
        try:
            resp = self.client.get_object(**kwargs)
        except ClientError as exc:
            if _missing(exc):
                return None
            if _status(exc) == 304 or _code(exc) == "304":
                raise NotModified(key) from None
            raise
        return Blob(data=resp["Body"].read(), etag=resp["ETag"])

    def put(
        self,
        key: str,
        data: bytes,
        *,
        if_match: str | None = None,
        if_none_match: str | None = None,
        content_type: str = "application/octet-stream",
    ) -> str:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "Body": data, "ContentType": content_type}
        if if_match:
            kwargs["IfMatch"] = if_match
        if if_none_match:
            kwargs["IfNoneMatch"] = if_none_match
        try:
            resp = self.client.put_object(**kwargs)
        except ClientError as exc:
            # 409 ConditionalRequestConflict: a concurrent conditional write is in flight; same meaning. A 404 on
            # an IfMatch write: the object was deleted since it was read; the condition failed all the same.
            if _status(exc) in (409, 412) or _code(exc) in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise PreconditionFailed(key) from None
            if if_match and _missing(exc):
                raise PreconditionFailed(key) from None
            raise
        return str(resp["ETag"])

    def download(self, key: str, fileobj: BinaryIO, *, on_bytes: Callable[[int], None] | None = None) -> None:
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _missing(exc):
                raise ObjectNotFound(key) from None
            raise
        body = resp["Body"]
        for chunk in iter(lambda: body.read(1 << 20), b""):
            fileobj.write(chunk)
            if on_bytes:
                on_bytes(len(chunk))

    def list_keys(self, prefix: str) -> list[str]:
        return [listed.key for listed in self.list_objects(prefix)]

    def list_objects(self, prefix: str) -> list[Listed]:
        found: list[Listed] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            found.extend(Listed(obj["Key"], obj["LastModified"]) for obj in page.get("Contents", []))
        return found

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)
