"""The validation gate in tests: a validator whose announcements are kept, a baseline release, and the manifest
written straight to the bucket (as a tool bypassing the CLI would)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dagsync.core import keys
from dagsync.core.documents import YAML, read_manifest
from dagsync.core.models import ChangeEvent, Manifest, Rejection
from dagsync.core.serde import dump_yaml
from dagsync.core.store import Blob, ObjectStore
from dagsync.gate.validator import Outcome, Validator
from dagsync.publish.publisher import publish
from tests.support import signing
from tests.support.projects import EXAMPLES, dag


class Recorder:
    """A validator whose announcements and alerts are kept for assertions; it signs with the tests' key and
    trusts it (tests.support.signing) unless told otherwise."""

    def __init__(self, store: ObjectStore, **kwargs: Any) -> None:
        self.events: list[ChangeEvent] = []
        self.rejections: list[Rejection] = []
        kwargs = {"signer": signing.SIGNER, "verifier": signing.VERIFIER, **kwargs}
        self.validator = Validator(store, on_release=self.events.append, on_rejection=self.rejections.append,
                                   **kwargs)

    def run(self, **kwargs: Any) -> Outcome:
        return self.validator.run(**kwargs)


def baseline(store: ObjectStore) -> Blob:
    """sales 1.0.0 and finance 1.0.0 live in release 1; returns release.json as it is then."""
    publish(store, "sales", "1.0.0", EXAMPLES / "sales", promote_now=True, published_by="ci")
    publish(store, "finance", "1.0.0", EXAMPLES / "finance", promote_now=True, published_by="ci")
    outcome = Recorder(store).run()
    assert outcome.status == "accepted" and outcome.sequence == 1, outcome
    release = store.get(keys.RELEASE_KEY)
    assert release is not None
    return release


def publish_dags(store: ObjectStore, src: Path, project: str, version: str, *dag_ids: str) -> None:
    """`project` `version` published (not promoted) from a folder under `src` with one DAG file per dag_id."""
    folder = src / project / version
    folder.mkdir(parents=True)
    for dag_id in dag_ids:
        (folder / f"{dag_id}.py").write_bytes(dag(dag_id))
    publish(store, project, version, folder)


def put_manifest(store: ObjectStore, projects: dict[str, str]) -> str:
    """A manifest of exactly `projects`, written straight to the bucket."""
    return store.put(keys.MANIFEST_KEY, dump_yaml(Manifest(projects=projects)), content_type=YAML)


def set_manifest(store: ObjectStore, changes: dict[str, str]) -> str:
    """Write the manifest straight to the bucket with `changes` applied to the current projects."""
    current, _ = read_manifest(store)
    return put_manifest(store, {**(current.projects if current else {}), **changes})
