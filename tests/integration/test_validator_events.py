"""Events in any order, O(changed) work, and rejections surfaced (rejection.json, metric, alert topic)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dagsync.core import keys
from dagsync.core.documents import read_release
from dagsync.core.store import Blob, S3Store
from dagsync.lambdas.invoke import InvocationContext
from dagsync.publish.publisher import publish
from tests.integration.conftest import event
from tests.integration.gate_helpers import RequestCounter, bare_store, many_projects, write_direct
from tests.support.gate import Recorder, baseline, set_manifest
from tests.support.projects import EXAMPLES, dag
from tests.support.tars import tar_gz


@pytest.fixture
def bucket() -> Iterator[S3Store]:
    yield from bare_store()


class Interleaving:
    """An ObjectStore that runs `action` once, right after the Nth get of `key`: another run slipping in."""

    def __init__(self, inner: S3Store, key: str, action: Callable[[], None]) -> None:
        self.inner, self.key, self.action, self.done = inner, key, action, False

    def get(self, key: str, **kw: Any) -> Blob | None:
        blob = self.inner.get(key, **kw)
        if key == self.key and not self.done:
            self.done = True
            self.action()
        return blob

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.parametrize("slip_in_after", [keys.RELEASE_KEY, keys.MANIFEST_KEY])
def test_a_slow_run_never_releases_an_older_manifest_over_a_newer_release(bucket: S3Store, slip_in_after: str) -> None:
    # Given release 1, and a slow validator run that has started reading
    baseline(bucket)
    write_direct(bucket, "sales", "2.0", tar_gz(("s.py", dag("sales_v2"))), promote=False)

    def newer_manifest_released_meanwhile() -> None:
        set_manifest(bucket, {"sales": "2.0"})
        assert Recorder(bucket).run().sequence == 2

    bucket.put(keys.MANIFEST_KEY, b'projects: {sales: "1.0.0", finance: "1.0.0"}\n')  # valid, soon to be old
    slow = Recorder(Interleaving(bucket, slip_in_after, newer_manifest_released_meanwhile))  # type: ignore[arg-type]
    # When the newer manifest is released while the slow run is between its reads
    outcome = slow.run()
    # Then the slow run does not release its older manifest: the newer release stands, the sequence only grew
    release, _ = read_release(bucket)
    manifest = bucket.get(keys.MANIFEST_KEY)
    assert release is not None and manifest is not None
    assert release.sequence == 2 and release.manifest_etag == manifest.etag
    assert release.projects["sales"].version == "2.0"
    assert outcome.status == "noop" and slow.events == []


def test_a_stale_or_duplicated_event_validates_the_current_manifest(aws: dict[str, Any], store: S3Store,
                                                                   handler: Any) -> None:
    # Given a manifest written twice; the event in hand names an older ETag than the current object
    publish(store, "sales", "1.0.0", EXAMPLES / "sales", promote_now=True)
    publish(store, "finance", "1.0.0", EXAMPLES / "finance", promote_now=True)
    stale = event("sqs_manifest_created.json")
    # When the stale event arrives, then the same event again
    first = handler.lambda_handler(stale, InvocationContext())
    counter = RequestCounter(handler.runtime().validator.store.client)
    second = handler.lambda_handler(stale, InvocationContext())
    # Then the current manifest (both projects) is released once, and the duplicate costs two reads, no write
    assert first == {"batchItemFailures": []} and second == {"batchItemFailures": []}
    release, _ = read_release(store)
    assert release is not None and release.sequence == 1 and sorted(release.projects) == ["finance", "sales"]
    assert [op.split()[0] for op in counter.operations] == ["GET", "GET"]


def test_a_rejected_manifest_followed_by_a_fixed_one_goes_through(bucket: S3Store) -> None:
    # Given release 1, then a manifest naming a version that was never published
    before = baseline(bucket)
    live = bucket.get(keys.MANIFEST_KEY)
    assert live is not None
    set_manifest(bucket, {"sales": "7.7.7"})
    validator = Recorder(bucket)
    assert validator.run().status == "rejected"
    # When the same manifest is seen again (a redelivered event) it is not re-rejected or re-alerted
    assert validator.run().detail == "manifest already rejected" and len(validator.rejections) == 1
    assert bucket.get(keys.RELEASE_KEY) == before
    # When the manifest is put back as it was when it went live: a no-op (same bytes, same ETag as release 1)
    bucket.put(keys.MANIFEST_KEY, live.data)
    assert validator.run().detail == "manifest unchanged since release"
    # When another broken one comes, then a fixed one that changes something
    set_manifest(bucket, {"sales": "7.7.8"})
    assert validator.run().status == "rejected"
    publish(bucket, "sales", "2.0.0", EXAMPLES / "marketing")
    set_manifest(bucket, {"sales": "2.0.0"})
    fixed = validator.run()
    # Then it goes through with the next sequence, and the sequence only grows
    assert fixed.status == "accepted" and fixed.sequence == 2 and fixed.changed == ["sales"]
    assert [e.sequence for e in validator.events] == [2]
    publish(bucket, "sales", "3.0.0", EXAMPLES / "sales", promote_now=True)
    assert validator.run().sequence == 3


def test_the_schedule_looks_again_at_a_rejection_whose_missing_version_appears(store: S3Store, handler: Any) -> None:
    # Given a manifest naming sales 2.0.0 before that version was catalogued (written out of order)
    publish(store, "sales", "1.0.0", EXAMPLES / "sales", promote_now=True)
    handler.lambda_handler(event("scheduled.json"), InvocationContext())
    set_manifest(store, {"sales": "2.0.0"})
    assert handler.lambda_handler(event("scheduled.json"), InvocationContext())["outcome"] == "rejected"
    # When the version is published afterwards, without the manifest changing
    publish(store, "sales", "2.0.0", EXAMPLES / "marketing")
    # Then an S3 event still finds it rejected (cheap no-op), but the scheduled safety net releases it
    handler.lambda_handler(event("sqs_manifest_created.json"), InvocationContext())
    release, _ = read_release(store)
    assert release is not None and release.projects["sales"].version == "1.0.0"
    assert handler.lambda_handler(event("scheduled.json"), InvocationContext())["outcome"] == "accepted"
    release, _ = read_release(store)
    assert release is not None and release.projects["sales"].version == "2.0.0" and release.sequence == 2


def test_a_rejection_is_surfaced_as_a_file_a_metric_and_an_alert(aws: dict[str, Any], store: S3Store, handler: Any,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    # Given someone listening on the alert topic
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    sqs, sns = aws["settings"].client("sqs"), aws["settings"].client("sns")
    url = sqs.create_queue(QueueName="alert-listener")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=aws["alert_topic_arn"], Protocol="sqs", Endpoint=arn)
    publish(store, "sales", "1.0.0", EXAMPLES / "sales", promote_now=True)
    handler.lambda_handler(event("scheduled.json"), InvocationContext())
    capsys.readouterr()
    # When a manifest naming an unknown version is validated
    set_manifest(store, {"sales": "4.0"})
    handler.lambda_handler(event("scheduled.json"), InvocationContext())
    # Then status/rejection.json has the reason, the manifest ETag and the time
    doc = json.loads(store.get(keys.REJECTION_KEY).data)  # type: ignore[union-attr]
    assert doc["reason"] == "sales 4.0: not in catalog/sales.yaml (latest: 1.0.0)"
    assert doc["manifest_etag"] == store.get(keys.MANIFEST_KEY).etag and doc["at"]  # type: ignore[union-attr]
    # And a Rejections metric was emitted (CloudWatch EMF on stdout)
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert any(m.get("Rejections") == [1.0] or m.get("Rejections") == 1.0 for m in emf), emf
    # And the alert topic carried the reason
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    bodies = [json.loads(m["Body"]) for m in messages]
    assert any("sales 4.0: not in catalog" in b["Message"] and b["Subject"] == "dagsync: manifest rejected"
               for b in bodies)


def requests_for_one_change(store: S3Store, projects: int) -> list[str]:
    warm = many_projects(store, projects)
    write_direct(store, "p0003", "2", tar_gz(("dag.py", dag("p0003_daily"))))
    counter = RequestCounter(store.client)
    outcome = warm.run()
    assert outcome.status == "accepted" and outcome.changed == ["p0003"]
    return [re.sub(r"/[0-9a-f]{64}\.json$", "/<sha256>.json", op) for op in counter.operations]


def test_validation_work_follows_the_changed_projects_not_the_project_count() -> None:
    # Given 10 live projects, and separately 60, each with one project changed
    counts = {}
    for n in (10, 60):
        store = bare_store()
        bucket = next(store)
        counts[n] = requests_for_one_change(bucket, n)
        store.close()
    # Then a warm validator makes the same requests whatever the number of projects (release, manifest, rejection,
    # the changed project's catalog and archive, a look for a later release in the history (release.json put back),
    # its one new shard, the release and its history copy, one marker)
    assert counts[10] == counts[60]
    assert counts[10] == [
        "GET release.json", "GET manifest.yaml", "GET status/rejection.json", "GET catalog/p0003.yaml",
        "GET projects/p0003/2/dags.tar.gz", "GET releases/0000000002.json", "PUT releases/shards/<sha256>.json",
        "PUT release.json",
        "PUT releases/0000000002.json", "PUT status/history/p0003/0000000002.2",
    ]
