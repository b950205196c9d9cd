"""The shared schema: names, versions, empty manifests, round trips."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from dagsync.core import keys
from dagsync.core.models import (
    Catalog,
    ChangeEvent,
    HostStatus,
    Manifest,
    ParsedFile,
    ParseRecord,
    Release,
    ReleasedProject,
    ReleaseShard,
)
from dagsync.core.releases import encode_shard
from dagsync.core.serde import DocumentError, dump_json, dump_yaml, load_json, load_yaml

SHA = "a" * 64


def released(version: str = "1.0.0") -> ReleasedProject:
    return ReleasedProject(version=version, archive_key=keys.archive_key("sales", version), sha256=SHA,
                           size=10, files=1, uncompressed_size=20, dag_ids=["d"])


@pytest.mark.parametrize("name", ["sales", "team-a_dags", "p1", "a" * 63])
def test_safe_project_names_are_accepted(name: str) -> None:
    assert Manifest(projects={name: "1.0"}).projects == {name: "1.0"}


@pytest.mark.parametrize("name", ["", ".dagsync", "..", "a/b", "Sales", "-x", "a" * 64, "x y", "café"])
def test_project_names_unsafe_as_a_folder_are_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="project name"):
        Manifest(projects={name: "1.0"})


@pytest.mark.parametrize("version", ["..", "../x", "1/2", "", ".hidden", "v 1"])
def test_versions_unsafe_in_a_key_are_refused(version: str) -> None:
    with pytest.raises(ValidationError, match="version"):
        Manifest(projects={"sales": version})


def test_empty_manifest_is_refused_unless_explicit() -> None:
    with pytest.raises(ValidationError, match="allow_empty"):
        Manifest(projects={})
    assert Manifest(projects={}, allow_empty=True).projects == {}


def test_unknown_keys_are_refused() -> None:
    with pytest.raises(DocumentError, match="Extra inputs"):
        load_yaml(Manifest, b"projects: {sales: '1'}\nsurprise: 1\n", "manifest.yaml")


def test_manifest_round_trips_through_yaml() -> None:
    manifest = Manifest(projects={"sales": "1.0.0", "marketing": "2"})
    assert load_yaml(Manifest, dump_yaml(manifest), "m") == manifest


def test_release_round_trips_through_json_and_names_its_tree() -> None:
    release = Release(sequence=3, manifest_etag='"e"', published_at=datetime(2026, 1, 1, tzinfo=UTC),
                      projects={"sales": released()})
    again = load_json(Release, dump_json(release), keys.RELEASE_KEY)
    assert again == release
    assert again.projects["sales"].tree_name == "1.0.0-" + "a" * 12


def test_release_sequence_starts_at_one() -> None:
    with pytest.raises(ValidationError):
        Release(sequence=0, manifest_etag="e", published_at=datetime.now(UTC), projects={})


def test_change_event_and_host_status_validate_names() -> None:
    event = ChangeEvent(release_etag="e", root={"sequence": 1, "changes": {"sales": "1.0"}}, entries={"sales": None})
    assert (event.sequence, event.changed) == (1, ["sales"])
    with pytest.raises(ValidationError):
        ChangeEvent(release_etag="e", root={}, entries={"../etc": None})
    with pytest.raises(ValidationError):
        HostStatus(host="Bad Host", sequence=0, agent_version="x", updated_at=datetime.now(UTC))


def test_key_layout() -> None:
    assert keys.archive_key("sales", "1.0") == "projects/sales/1.0/dags.tar.gz"
    assert keys.catalog_key("sales") == "catalog/sales.yaml"
    assert keys.host_status_key("host-1") == "hosts/host-1.json"
    assert keys.MANIFEST_KEY == "manifest.yaml" and keys.RELEASE_KEY == "release.json"


OLD_CATALOG = b"""project: sales
entries:
- version: 1.0.0
  archive_key: projects/sales/1.0.0/dags.tar.gz
  sha256: """ + SHA.encode() + b"""
  size: 10
  files: 1
  uncompressed_size: 20
  dag_ids: [d]
  published_at: '2026-01-01T00:00:00Z'
  published_by: ci
"""


def test_a_catalog_written_before_parse_records_reads_and_writes_back_the_same_fields() -> None:
    # Given a catalog entry from before the parse gate (no `parse`)
    catalog = load_yaml(Catalog, OLD_CATALOG, "catalog/sales.yaml")
    # Then it reads, has no parse record, and is written back without a `parse` key
    assert catalog.entries[0].parse is None
    assert "parse" not in dump_yaml(catalog).decode()
    assert load_yaml(Catalog, dump_yaml(catalog), "c") == catalog


def test_a_parse_record_round_trips_and_gives_the_dag_ids_of_every_file() -> None:
    record = ParseRecord(airflow_version="3.3.2", seconds=0.5,
                         files={"a.py": ParsedFile(dag_ids=["b", "a"], seconds=0.4),
                                "lib/x.py": ParsedFile(seconds=0.1), "c.py": ParsedFile(dag_ids=["b"], seconds=0)})
    entry = load_yaml(Catalog, OLD_CATALOG, "c").entries[0].model_copy(update={"parse": record})
    again = load_yaml(Catalog, dump_yaml(Catalog(project="sales", entries=[entry])), "c").entries[0]
    assert again.parse == record and record.dag_ids == ["a", "b"]


def test_a_released_project_without_a_parse_cost_has_the_same_shard_bytes_as_before() -> None:
    # Given an entry without a parse cost (published without Airflow), and one with
    plain, costed = released(), released().model_copy(update={"parse_seconds": 1.25})
    # Then the first is encoded with exactly the fields a shard had before the field existed (same digest)
    assert "parse_seconds" not in encode_shard({"sales": plain}).decode()
    assert json.loads(encode_shard({"sales": costed}))["projects"]["sales"]["parse_seconds"] == 1.25
    assert ReleaseShard.model_validate_json(encode_shard({"sales": costed})).projects["sales"] == costed
