"""Read-modify-write of a document in the bucket (dagsync.core.documents.update): conditional, retried on 412."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from dagsync.core.documents import ConflictError, update
from dagsync.core.store import Blob
from tests.support.store import FakeStore

DOC = "catalog/doc.yaml"


def append(line: bytes, seen: list[bytes]) -> Callable[[Blob | None], bytes]:
    """A change that appends `line`, noting the content it was given."""

    def change(blob: Blob | None) -> bytes:
        current = blob.data if blob else b""
        seen.append(current)
        return current + line

    return change


def test_a_write_that_lost_a_race_is_retried_on_what_the_other_writer_left(store: FakeStore) -> None:
    # Given a document, and another writer that gets in between our read and our conditional write
    store.put(DOC, b"a\n")
    store.race(DOC, lambda: store.put(DOC, b"a\nb\n"))
    seen: list[bytes] = []
    # When we append a line with update()
    etag = update(store, DOC, append(b"c\n", seen), content_type="text/plain")
    # Then our first write was refused (412), the change ran again on the new content, and both lines landed
    assert store.refused == [DOC]
    assert seen == [b"a\n", b"a\nb\n"]
    assert store.objects[DOC] == b"a\nb\nc\n" and etag == store.etags[DOC]


def test_creating_a_document_someone_else_just_created_becomes_an_update_of_theirs(store: FakeStore) -> None:
    # Given no document yet, and another writer that creates it between our read and our write
    store.race(DOC, lambda: store.put(DOC, b"theirs\n", if_none_match="*"))
    seen: list[bytes] = []
    # When we create it with update()
    update(store, DOC, append(b"ours\n", seen), content_type="text/plain")
    # Then our create (IfNoneMatch="*") was refused, and the retry kept their content
    assert store.refused == [DOC] and seen == [b"", b"theirs\n"]
    assert store.objects[DOC] == b"theirs\nours\n"


def test_nothing_to_write_writes_nothing(store: FakeStore) -> None:
    # Given a document
    store.put(DOC, b"a\n")
    puts = list(store.puts)
    # When the change has nothing to write, for it and for a document that does not exist
    current = update(store, DOC, lambda _: None, content_type="text/plain")
    absent = update(store, "absent.yaml", lambda _: None, content_type="text/plain")
    # Then the current ETag (or None) comes back and nothing was written
    assert current == store.etags[DOC] and absent is None
    assert store.puts == puts and "absent.yaml" not in store.objects


def test_a_document_that_keeps_changing_gives_up_and_writes_nothing_of_ours(store: FakeStore) -> None:
    # Given another writer that gets in before every one of our writes
    store.put(DOC, b"0")

    def another_write() -> None:
        store.put(DOC, str(len(store.puts)).encode())
        store.race(DOC, another_write)

    store.race(DOC, another_write)
    # When we try three times
    with pytest.raises(ConflictError, match="after 3 attempts; nothing was written"):
        update(store, DOC, lambda _: b"ours", content_type="text/plain", attempts=3)
    # Then every attempt was refused and the document is the other writer's
    assert store.refused == [DOC] * 3 and store.objects[DOC] != b"ours"
