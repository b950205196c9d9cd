"""The publisher against the fake store's S3 semantics: concurrent writers both land, re-publishing identical
content changes nothing, and a version is never overwritten."""

from __future__ import annotations

from pathlib import Path

import pytest

from dagsync.core import keys
from dagsync.core.documents import read_catalog, read_manifest
from dagsync.publish.publisher import PublishError, PublishResult, promote, publish
from tests.support.projects import EXAMPLES
from tests.support.store import FakeStore


def test_two_concurrent_catalog_appends_both_land(store: FakeStore) -> None:
    # Given a pipeline publishing sales 2.0.0 between another pipeline's catalog read and its catalog write
    others: list[PublishResult] = []
    store.race(keys.catalog_key("sales"), lambda: others.append(
        publish(store, "sales", "2.0.0", EXAMPLES / "marketing", published_by="ci-2")))
    # When the first pipeline publishes sales 1.0.0
    mine = publish(store, "sales", "1.0.0", EXAMPLES / "sales", published_by="ci-1")
    # Then its catalog write lost the race (412) and was retried on top of the other's: both versions are recorded
    assert store.refused == [keys.catalog_key("sales")]
    catalog = read_catalog(store, "sales")
    assert catalog is not None
    assert [(e.version, e.published_by) for e in catalog.entries] == [("2.0.0", "ci-2"), ("1.0.0", "ci-1")]
    assert mine.catalog_appended and others[0].catalog_appended
    assert [e.sha256 for e in catalog.entries] == [others[0].sha256, mine.sha256]


def test_two_concurrent_promotes_of_different_projects_both_land(store: FakeStore) -> None:
    # Given sales and finance published, and finance promoted between sales' manifest read and its write
    publish(store, "sales", "1.0.0", EXAMPLES / "sales")
    publish(store, "finance", "1.0.0", EXAMPLES / "finance")
    store.race(keys.MANIFEST_KEY, lambda: promote(store, "finance", "1.0.0"))
    # When sales is promoted
    change = promote(store, "sales", "1.0.0")
    # Then the lost write was retried and the manifest holds both; the change names the manifest now current
    manifest, etag = read_manifest(store)
    assert store.refused == [keys.MANIFEST_KEY]
    assert manifest is not None and manifest.projects == {"finance": "1.0.0", "sales": "1.0.0"}
    assert change.changed and change.etag == etag


def test_an_identical_republish_is_a_noop(store: FakeStore) -> None:
    # Given sales 1.0.0 published
    first = publish(store, "sales", "1.0.0", EXAMPLES / "sales")
    puts = list(store.puts)
    # When the same content is published again under the same version
    again = publish(store, "sales", "1.0.0", EXAMPLES / "sales")
    # Then nothing was written: the archive create was refused (IfNoneMatch="*") and the catalog left alone
    assert not again.archive_created and not again.catalog_appended and again.sha256 == first.sha256
    assert store.puts == puts
    assert store.refused == [keys.archive_key("sales", "1.0.0")]


def test_different_content_for_an_existing_version_is_refused(store: FakeStore, tmp_path: Path) -> None:
    # Given sales 1.0.0 published
    publish(store, "sales", "1.0.0", EXAMPLES / "sales")
    before = dict(store.objects)
    # When other content is published under the same version
    with pytest.raises(PublishError, match="already published with different content; versions are immutable"):
        publish(store, "sales", "1.0.0", EXAMPLES / "marketing")
    # Then the archive, the catalog and everything else are as they were
    assert store.objects == before

