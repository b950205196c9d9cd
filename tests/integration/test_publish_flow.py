"""Publisher and validator handler against moto: the slice without processes."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from dagsync.core import keys
from dagsync.core.documents import read_catalog, read_manifest, read_release
from dagsync.core.models import ChangeEvent
from dagsync.core.store import S3Store
from dagsync.lambdas.invoke import InvocationContext
from dagsync.publish.publisher import PublishError, promote, publish, retire
from tests.integration.conftest import drain, event
from tests.support.projects import EXAMPLES


def test_publish_writes_archive_catalog_and_manifest(store: S3Store) -> None:
    result = publish(store, "sales", "1.0.0", EXAMPLES / "sales", promote_now=True, published_by="ci")
    assert result.archive_created and result.catalog_appended
    assert result.dag_ids == ["sales_daily_report", "sales_refunds"]
    archive = store.get(keys.archive_key("sales", "1.0.0"))
    assert archive is not None and len(archive.data) == result.size
    catalog = read_catalog(store, "sales")
    assert catalog is not None and [e.version for e in catalog.entries] == ["1.0.0"]
    assert catalog.entries[0].published_by == "ci"
    manifest, _ = read_manifest(store)
    assert manifest is not None and manifest.projects == {"sales": "1.0.0"}


def test_republishing_identical_content_is_a_noop(store: S3Store) -> None:
    publish(store, "sales", "1.0.0", EXAMPLES / "sales")
    again = publish(store, "sales", "1.0.0", EXAMPLES / "sales")
    assert not again.archive_created and not again.catalog_appended
    catalog = read_catalog(store, "sales")
    assert catalog is not None and len(catalog.entries) == 1


def test_republishing_a_version_with_other_content_is_refused(store: S3Store, tmp_path: Path) -> None:
    publish(store, "sales", "1.0.0", EXAMPLES / "sales")
    shutil.copytree(EXAMPLES / "sales", tmp_path / "sales")
    (tmp_path / "sales" / "extra.py").write_text("x = 2\n")
    with pytest.raises(PublishError, match="already published with different content"):
        publish(store, "sales", "1.0.0", tmp_path / "sales")


def test_promoting_an_unpublished_version_is_refused(store: S3Store) -> None:
    publish(store, "sales", "1.0.0", EXAMPLES / "sales")
    with pytest.raises(PublishError, match="no published version 9.9"):
        promote(store, "sales", "9.9")
    with pytest.raises(PublishError, match="never been published"):
        promote(store, "nope", "1")


def test_retiring_the_last_project_needs_the_explicit_flag(store: S3Store) -> None:
    publish(store, "sales", "1.0.0", EXAMPLES / "sales", promote_now=True)
    with pytest.raises(PublishError, match="--allow-empty"):
        retire(store, "sales")
    change = retire(store, "sales", allow_empty=True)
    manifest, _ = read_manifest(store)
    assert change.changed and manifest is not None and manifest.projects == {} and manifest.allow_empty


def test_bad_dag_content_is_refused_at_publish(store: S3Store, tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "broken.py").write_text("def oops(:\n")
    with pytest.raises(PublishError, match="broken.py:1: syntax error"):
        publish(store, "broken", "1", tmp_path / "p")
    assert store.get(keys.archive_key("broken", "1")) is None


def test_manifest_event_releases_and_fans_out(aws: dict[str, Any], store: S3Store, handler: Any) -> None:
    publish(store, "sales", "1.0.0", EXAMPLES / "sales", promote_now=True)
    result = handler.lambda_handler(event("sqs_manifest_created.json"), InvocationContext())
    assert result == {"batchItemFailures": []}
    release, _ = read_release(store)
    assert release is not None and release.sequence == 1
    assert release.projects["sales"].version == "1.0.0"
    messages = drain(aws)
    assert [(e.sequence, e.changed) for e in map(ChangeEvent.model_validate, messages)] == [(1, ["sales"])]


def test_scheduled_event_takes_the_same_path_and_is_a_noop_when_unchanged(store: S3Store, handler: Any) -> None:
    publish(store, "sales", "1.0.0", EXAMPLES / "sales", promote_now=True)
    first = handler.lambda_handler(event("scheduled.json"), InvocationContext())
    second = handler.lambda_handler(event("scheduled.json"), InvocationContext())
    assert first["outcome"] == "accepted" and second["outcome"] == "noop"
    release, _ = read_release(store)
    assert release is not None and release.sequence == 1


def test_s3_test_event_is_acknowledged_without_work(store: S3Store, handler: Any) -> None:
    result = handler.lambda_handler(event("sqs_s3_test_event.json"), InvocationContext())
    assert result == {"batchItemFailures": []}
    assert read_release(store) == (None, None)


def test_rejected_manifest_leaves_release_untouched(aws: dict[str, Any], store: S3Store, handler: Any) -> None:
    publish(store, "sales", "1.0.0", EXAMPLES / "sales", promote_now=True)
    handler.lambda_handler(event("scheduled.json"), InvocationContext())
    before = store.get(keys.RELEASE_KEY)
    drain(aws)
    store.put(keys.MANIFEST_KEY, b"projects:\n  sales: '1.0.0'\n  ghost: '2.0'\n")
    result = handler.lambda_handler(event("scheduled.json"), InvocationContext())
    assert result["outcome"] == "rejected"
    assert "ghost 2.0: not in catalog/ghost.yaml" in result["detail"]
    assert store.get(keys.RELEASE_KEY) == before
    assert drain(aws) == []
    rejection = store.get(keys.REJECTION_KEY)
    assert rejection is not None and b"ghost" in rejection.data


def test_a_failing_validation_fails_its_records_so_sqs_retries_them(handler: Any,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    def s3_down() -> None:
        raise OSError("S3 down")

    monkeypatch.setattr(handler.runtime().validator, "run", s3_down)
    batch = event("sqs_s3_test_event.json")
    batch["Records"] += event("sqs_manifest_created.json")["Records"]
    result = handler.lambda_handler(batch, InvocationContext())
    assert [f["itemIdentifier"] for f in result["batchItemFailures"]] == ["2e1424d4-f796-459a-8184-9c92662be6da"]
    with pytest.raises(BatchProcessingError, match="All records failed"):
        handler.lambda_handler(event("sqs_manifest_created.json"), InvocationContext())
