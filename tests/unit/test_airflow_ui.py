"""The DAG deploys pages without Airflow: the source's caches against the in-memory store, the page documents
(pure) and their HTML."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dagsync.airflow.ui import model, pages
from dagsync.airflow.ui.settings import NotConfigured, UiSettings
from dagsync.airflow.ui.source import Live, ProjectRead, Source
from dagsync.core import keys, releases
from dagsync.core.models import (
    Catalog,
    CatalogEntry,
    HistoryEntry,
    HostStatus,
    Manifest,
    ManifestWrite,
    Rejection,
    Release,
    ReleaseRoot,
)
from dagsync.core.serde import dump_json, dump_yaml
from dagsync.publish.view import DeploymentView
from tests.support import signing
from tests.support.projects import TEST_CHAIN, put_release
from tests.support.store import FakeStore

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
DAG = {"dag.py": "from airflow.sdk import DAG\nDAG('x')\n"}
Publish = Callable[..., Release]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def catalog(store: FakeStore, project: str, *versions: str, by: str = "ci") -> None:
    entries = [CatalogEntry(version=v, archive_key=keys.archive_key(project, v), sha256="a" * 64, size=1, files=1,
                            uncompressed_size=1, published_at=T0, published_by=by) for v in versions]
    store.put(keys.catalog_key(project), dump_yaml(Catalog(project=project, entries=entries)))


def manifest(store: FakeStore, **projects: str) -> str:
    return store.put(keys.MANIFEST_KEY, dump_yaml(Manifest(projects=projects)))


def host(store: FakeStore, name: str, sequence: int, error: str | None = None) -> None:
    status = HostStatus(host=name, sequence=sequence, agent_version="0.1.0", updated_at=T0, last_error=error)
    store.put(keys.host_status_key(name), dump_json(status))


def test_one_read_of_the_bucket_serves_every_page_for_the_ttl(store: FakeStore, publish: Publish) -> None:
    # Given a release of two projects, their catalogs and a host
    publish({"alpha": ("1", DAG), "beta": ("1", DAG)}, sequence=1)
    catalog(store, "alpha", "1")
    catalog(store, "beta", "1")
    manifest(store, alpha="1", beta="1")
    host(store, "host-1", 1)
    clock = Clock()
    source = Source(store, ttl=3.0, clock=clock)
    # When 50 requests come within the TTL
    docs = [model.status_doc(source.live()) for _ in range(50)]
    # Then the bucket was read once: one GET of each document, each shard and each catalog
    assert store.gets.count(keys.RELEASE_KEY) == 1 and store.gets.count(keys.MANIFEST_KEY) == 1
    assert store.gets.count(keys.catalog_key("alpha")) == 1
    assert all(d == docs[0] for d in docs) and docs[0]["sequence"] == 1
    shard_reads = len([k for k in store.gets if k.startswith(keys.SHARDS_PREFIX)])
    # When the TTL has passed and release 2 changed only beta
    publish({"alpha": ("1", DAG), "beta": ("2", DAG)}, sequence=2)
    catalog(store, "beta", "1", "2")
    clock.now = 3.5
    doc = model.status_doc(source.live())
    # Then the page shows it, reading again only what changed: no shard twice, alpha's catalog not again
    assert doc["sequence"] == 2 and doc["projects"]["beta"]["version"] == "2"
    assert store.gets.count(keys.RELEASE_KEY) == 2
    assert store.gets.count(keys.catalog_key("alpha")) == 1 and store.gets.count(keys.catalog_key("beta")) == 2
    shard_keys = [k for k in store.gets if k.startswith(keys.SHARDS_PREFIX)]
    assert len(shard_keys) == len(set(shard_keys)) and len(shard_keys) > shard_reads


def test_the_status_shows_who_published_the_pending_manifest_and_only_the_current_rejection(
        store: FakeStore, publish: Publish) -> None:
    publish({"alpha": ("1", DAG)}, sequence=1)
    catalog(store, "alpha", "1", by="octocat")
    etag = manifest(store, alpha="1", gamma="3")
    store.put(keys.REJECTION_KEY, dump_json(Rejection(manifest_etag=etag, at=T0, reason="gamma 3 is not published",
                                                      errors=["gamma 3 is not published", "and more"])))
    doc = model.status_doc(Source(store, ttl=0).live())
    assert doc["projects"]["alpha"]["published_by"] == "octocat" and doc["pending"] == {"gamma": "3"}
    assert doc["rejection"]["reason"] == "gamma 3 is not published"
    assert doc["release"]["signed_by"] and doc["release"]["manifest"]["etag"] == '"m"'
    # A rejection of an older manifest is not the current one
    manifest(store, alpha="1")
    assert model.status_doc(Source(store, ttl=0).live())["rejection"] is None


def live_with_hosts(read_at: datetime, **hosts: tuple[int, str | None]) -> Live:
    release = Release(sequence=5, manifest_etag='"m"', published_at=T0, projects={})
    view = DeploymentView(manifest=None, release=release, rejection=None, unreadable={"host-x": "unreadable status"},
                          hosts={h: HostStatus(host=h, sequence=s, agent_version="0.1.0", updated_at=T0, last_error=e)
                                 for h, (s, e) in hosts.items()})
    root = ReleaseRoot(chain=TEST_CHAIN, sequence=5, published_at=T0, manifest=ManifestWrite(etag='"m"'),
                       project_count=0)
    return Live(view=view, root=root, published={}, read_at=read_at)


def test_a_host_still_behind_a_release_published_minutes_ago_stands_out_as_silent() -> None:
    hosts = {"a": (5, None), "b": (4, None), "c": (5, "disk full")}
    soon = model.hosts_doc(live_with_hosts(T0 + timedelta(seconds=30), **hosts))
    assert {h: d["state"] for h, d in soon.items()} == {"a": "in sync", "b": "applying", "c": "error",
                                                         "host-x": "unreadable"}
    later = model.hosts_doc(live_with_hosts(T0 + model.SILENT_AFTER + timedelta(seconds=1), **hosts))
    assert later["b"]["state"] == "silent" and later["b"]["lag"] == 1 and later["b"]["behind_seconds"] == 121
    assert later["a"]["state"] == "in sync" and later["c"]["last_error"] == "disk full"
    page = pages.hosts(model.host_page_doc(live_with_hosts(T0 + timedelta(minutes=5), **hosts)), "/dagsync")
    assert '<tr class="silent">' in page and "disk full" in page and '<tr class="unreadable">' in page


def test_a_release_page_says_what_was_added_changed_and_retired(store: FakeStore, publish: Publish) -> None:
    # Given release 1, and release 2 made from it as the validator makes one (changes against release 1)
    first = publish({"alpha": ("1", DAG), "beta": ("1", DAG), "gone": ("1", DAG)}, sequence=1)
    second = publish({"alpha": ("2", DAG), "beta": ("1", DAG), "new": ("1", DAG)}, sequence=2, write=False)
    previous = releases.read_root(store, releases.AcceptUnsigned())
    assert previous is not None
    made = releases.draft(previous, first.projects, dict(second.projects), manifest=ManifestWrite(etag='"m2"'), now=T0)
    releases.write(store, made, signing.SIGNER, previous.etag)
    source = Source(store, ttl=0)
    # Then its page lists each change with the version before it, and what stayed
    read = source.release(2)
    assert read is not None
    doc = model.release_doc(read, source.live())
    assert [(c["project"], c["change"], c["from"], c["to"]) for c in doc["changes"]] == [
        ("alpha", "changed", "1", "2"), ("gone", "retired", "1", None), ("new", "added", None, "1")]
    assert doc["unchanged"] == ["beta"] and doc["live"] and doc["previous"] == 1 and doc["next"] is None
    # And release 1's page links to the next one; a release not in the bucket is None (the app's 404)
    first_doc = model.release_doc(source.release(1), source.live())  # type: ignore[arg-type]
    assert not first_doc["live"] and first_doc["next"] == 2 and first_doc["previous"] is None
    assert source.release(9) is None
    html = pages.release(doc, "/dagsync")
    assert "Release #2" in html and 'href="/dagsync/releases/1"' in html and "retired" in html


def test_project_history_marks_rollbacks_and_retirements() -> None:
    at = [T0 + timedelta(minutes=i) for i in range(5)]
    history = [HistoryEntry(sequence=1, version="1", at=at[0]), HistoryEntry(sequence=3, version="2", at=at[1]),
               HistoryEntry(sequence=4, version="1", at=at[2]), HistoryEntry(sequence=6, version=None, at=at[3]),
               HistoryEntry(sequence=8, version="2", at=at[4])]
    rows = model.periods(history)
    assert [(r["sequence"], r["version"], r["rollback"], r["retired"]) for r in rows] == [
        (8, "2", True, False), (6, None, False, True), (4, "1", True, False), (3, "2", False, False),
        (1, "1", False, False)]
    assert rows[2]["until_sequence"] == 6 and rows[0]["until"] is None and rows[4]["until"] == at[1].isoformat()


def test_every_value_from_the_bucket_is_escaped_in_the_html(store: FakeStore, publish: Publish) -> None:
    publish({"alpha": ("1", DAG)}, sequence=1)
    catalog(store, "alpha", "1", by="<img src=x onerror=alert(1)>")
    etag = manifest(store, alpha="1", beta="2")
    store.put(keys.REJECTION_KEY, dump_json(Rejection(manifest_etag=etag, at=T0, reason="<script>alert(1)</script>")))
    source = Source(store, ttl=0)
    page = pages.overview(model.status_doc(source.live()), "/dagsync")
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x" not in page and 'href="/dagsync/projects/alpha"' in page
    project = source.project("alpha")
    assert isinstance(project, ProjectRead) and source.project("never") is None
    assert "&lt;img" in pages.project(model.project_doc(project, source.live()), "/dagsync")


def test_settings_come_from_the_agents_environment_and_say_what_is_missing() -> None:
    with pytest.raises(NotConfigured, match="DAGSYNC_BUCKET is not set"):
        UiSettings.from_env({})
    with pytest.raises(NotConfigured, match="DAGSYNC_UI_CACHE_SECONDS='soon' is not a number"):
        UiSettings.from_env({"DAGSYNC_BUCKET": "b", "DAGSYNC_UI_CACHE_SECONDS": "soon"})
    assert UiSettings.from_env({"DAGSYNC_BUCKET": "b", "DAGSYNC_ENDPOINT_URL": "http://127.0.0.1:1"}) == UiSettings(
        bucket="b", endpoint_url="http://127.0.0.1:1", region=None, ttl=3.0)


def test_a_release_json_the_hosts_refuse_is_shown_as_refused(store: FakeStore, publish: Publish,
                                                             tmp_path: Path) -> None:
    # Given release 1 signed by the validator's key, checked with the agent's pinned key file
    publish({"alpha": ("1", DAG)}, sequence=1)
    verifier = UiSettings(bucket="b", endpoint_url=None, region=None,
                          trusted_keys=str(signing.trusted_keys_file(tmp_path))).verifier()
    doc = model.status_doc(Source(store, ttl=0, verifier=verifier).live())
    assert doc["signature"] == {"checked": True, "trusted": True, "problem": None}
    assert "signature verified" in pages.overview(doc, "/dagsync")
    # When release.json is replaced by one signed by another key
    forged = publish({"alpha": ("2", DAG)}, sequence=2, write=False)
    put_release(store, forged, signing.OTHER)
    doc = model.status_doc(Source(store, ttl=0, verifier=verifier).live())
    # Then the page shows it as the bucket has it, and says the hosts refuse it and why
    assert doc["sequence"] == 2 and doc["signature"]["trusted"] is False
    assert "which is not trusted" in doc["signature"]["problem"]
    assert "Hosts refuse release.json" in pages.overview(doc, "/dagsync")
    # Without trusted keys nothing is checked, and the page says so
    doc = model.status_doc(Source(store, ttl=0).live())
    assert doc["signature"] == {"checked": False, "trusted": None, "problem": None}
    assert "signature not checked here" in pages.overview(doc, "/dagsync")
    with pytest.raises(NotConfigured, match="DAGSYNC_TRUSTED_KEYS"):
        UiSettings(bucket="b", endpoint_url=None, region=None, trusted_keys=str(tmp_path / "none.pem")).verifier()


def test_an_unreachable_bucket_is_tried_once_per_ttl_not_once_per_waiting_request(
        store: FakeStore, publish: Publish) -> None:
    publish({"alpha": ("1", DAG)}, sequence=1)
    clock = Clock()
    source = Source(store, ttl=3.0, clock=clock)
    assert source.live().view.sequence == 1
    asked: list[str] = []
    get = store.get
    store.get = lambda key, **kw: (asked.append(key), get(key, **kw))[1]  # type: ignore[method-assign]
    store.fail = ConnectionError("S3 is down")
    clock.now = 4.0
    # Every request within the TTL gets the one failure; the store was asked once
    for _ in range(10):
        with pytest.raises(ConnectionError, match="S3 is down"):
            source.live()
    assert asked == [keys.MANIFEST_KEY]
    # After the TTL, with S3 back, the page reads again
    store.fail = None
    clock.now = 8.0
    assert source.live().view.sequence == 1 and asked.count(keys.MANIFEST_KEY) == 2
