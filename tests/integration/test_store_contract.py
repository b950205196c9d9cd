"""The fake store the unit tests use answers as S3 does: each case runs against the fake and against S3Store on
moto, and both must say the same."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

from dagsync.core.store import NotModified, ObjectNotFound, ObjectStore, PreconditionFailed
from tests.integration.gate_helpers import bare_store
from tests.support.store import FakeStore


@pytest.fixture(params=["fake", "s3"])
def any_store(request: pytest.FixtureRequest) -> Iterator[ObjectStore]:
    if request.param == "fake":
        yield FakeStore()
    else:
        yield from bare_store()


def test_conditional_creates_and_updates(any_store: ObjectStore) -> None:
    # Given an object written once
    etag = any_store.put("k", b"one")
    # Then creating it again (IfNoneMatch="*") and updating it from another ETag both fail with 412
    with pytest.raises(PreconditionFailed):
        any_store.put("k", b"two", if_none_match="*")
    with pytest.raises(PreconditionFailed):
        any_store.put("k", b"two", if_match='"0123456789abcdef0123456789abcdef"')
    # And updating it from its own ETag succeeds, with a new ETag; the same bytes again give that ETag again
    new = any_store.put("k", b"two", if_match=etag)
    assert new != etag and any_store.put("k", b"two") == new
    blob = any_store.get("k")
    assert blob is not None and (blob.data, blob.etag) == (b"two", new)
    # And creating a key that does not exist (IfNoneMatch="*") succeeds
    assert any_store.put("fresh", b"x", if_none_match="*")


def test_an_update_of_a_missing_key_is_refused_and_writes_nothing(any_store: ObjectStore) -> None:
    # S3 answers 404 here, which S3Store reports as the failed condition it is; the fake answers 412.
    with pytest.raises(PreconditionFailed):
        any_store.put("missing", b"x", if_match='"0123456789abcdef0123456789abcdef"')
    assert any_store.get("missing") is None


def test_conditional_reads_downloads_listing_and_delete(any_store: ObjectStore) -> None:
    # Given two objects under a prefix and one outside it
    etag = any_store.put("p/a", b"aaa")
    any_store.put("p/b", b"b")
    any_store.put("q/c", b"c")
    # Then a read naming the current ETag is NotModified, a missing key reads as None
    with pytest.raises(NotModified):
        any_store.get("p/a", if_none_match=etag)
    assert any_store.get("p/a", if_none_match='"0123456789abcdef0123456789abcdef"') is not None
    assert any_store.get("p/zz") is None
    # And a download streams the bytes (counting them), or raises ObjectNotFound
    sink = io.BytesIO()
    counted: list[int] = []
    any_store.download("p/a", sink, on_bytes=counted.append)
    assert sink.getvalue() == b"aaa" and sum(counted) == 3
    with pytest.raises(ObjectNotFound):
        any_store.download("p/zz", io.BytesIO())
    # And listing and delete see only what is there
    assert sorted(any_store.list_keys("p/")) == ["p/a", "p/b"]
    any_store.delete("p/a")
    assert any_store.list_keys("p/") == ["p/b"] and any_store.get("p/a") is None
