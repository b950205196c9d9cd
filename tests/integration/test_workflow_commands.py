"""The CLI workflow against moto in-process: rollback, history, diff, validate, --wait outcomes,
--wait-hosts, status, progress. Each prints JSON for CI and exits with a documented code."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dagsync.cli import main as cli
from dagsync.core import keys
from dagsync.core.documents import read_catalog
from dagsync.core.models import HostStatus, ParsedFile, ParseRecord
from dagsync.core.serde import dump_json
from dagsync.core.store import S3Store
from dagsync.publish.publisher import publish
from tests.integration.gate_helpers import archive_of, bare_store, write_direct
from tests.support.gate import Recorder, set_manifest
from tests.support.projects import EXAMPLES

BUCKET = "dagsync-artifacts"


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Store]:
    monkeypatch.setenv("DAGSYNC_BUCKET", BUCKET)
    monkeypatch.delenv("DAGSYNC_ENDPOINT_URL", raising=False)
    yield from bare_store()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    """dagsync ARGV --json: (exit code, the JSON document printed, stderr)."""
    code = cli.main([*argv, "--json"])
    out, err = capsys.readouterr()
    return code, json.loads(out.strip().splitlines()[-1]), err


class BackgroundValidator:
    """The validator running as the Lambda would, every few milliseconds, while a command waits."""

    def __init__(self, store: S3Store) -> None:
        self.stop = threading.Event()
        self.recorder = Recorder(store)
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self.stop.wait(0.02):
            self.recorder.run()

    def __enter__(self) -> BackgroundValidator:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()


def release_versions(store: S3Store, history_of: str, capsys: pytest.CaptureFixture[str]) -> Any:
    return run(capsys, "history", history_of)[1]


def three_releases(store: S3Store, tmp_path: Path) -> None:
    """sales 1.0 -> 2.0 -> 3.0, each released."""
    for version, folder in (("1.0", "sales"), ("2.0", "marketing"), ("3.0", "finance")):
        publish(store, "sales", version, EXAMPLES / folder, promote_now=True, published_by="ci")
        assert Recorder(store).run().status == "accepted"


def test_rollback_goes_to_the_version_live_before_the_current_one(store: S3Store, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    # Given sales went live as 1.0, 2.0, then 3.0
    three_releases(store, tmp_path)
    # When rolled back without --to, and the validator releases it
    with BackgroundValidator(store):
        code, doc, _ = run(capsys, "rollback", "sales", "--wait")
    # Then 2.0 (the version live before 3.0) is live again
    assert code == 0 and doc["from"] == "3.0" and doc["to"] == "2.0" and doc["release"]["sequence"] == 4
    # And a second rollback goes back to what was live before 2.0 came back, i.e. 3.0 (like `cd -`)
    with BackgroundValidator(store):
        assert run(capsys, "rollback", "sales", "--wait")[1]["to"] == "3.0"
        # And --to picks any published version
        code, doc, _ = run(capsys, "rollback", "sales", "--to", "1.0", "--wait")
    assert code == 0 and doc["to"] == "1.0"
    history = run(capsys, "history", "sales")[1]
    assert history["live"] == "1.0"
    assert [r["version"] for r in history["releases"]] == ["1.0", "3.0", "2.0", "3.0", "2.0", "1.0"]
    assert [p["version"] for p in history["published"]] == ["3.0", "2.0", "1.0"]
    assert history["published"][2]["live_in_releases"] == [1, 6] and history["published"][2]["live"]


def test_rollback_refuses_when_there_is_nothing_to_go_back_to(store: S3Store,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    publish(store, "sales", "1.0", EXAMPLES / "sales", promote_now=True)
    Recorder(store).run()
    code, doc, _ = run(capsys, "rollback", "sales")
    assert code == 1 and "no earlier version to roll back to (live: 1.0)" in doc["error"]
    code, doc, _ = run(capsys, "rollback", "ghost")
    assert code == 1 and "ghost is not live" in doc["error"]
    code, doc, _ = run(capsys, "rollback", "sales", "--to", "0.9")
    assert code == 1 and "no published version 0.9" in doc["error"]


def test_rollback_falls_back_to_the_catalog_when_there_is_no_history(store: S3Store,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    # Given a bucket released before history was recorded
    publish(store, "sales", "1.0", EXAMPLES / "sales")
    publish(store, "sales", "2.0", EXAMPLES / "marketing", promote_now=True)
    Recorder(store, record_history=False).run()
    code, doc, _ = run(capsys, "rollback", "sales")
    assert code == 0 and doc["to"] == "1.0"


def test_publish_wait_exits_3_printing_the_rejection_reason(store: S3Store, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    # Given release 1 with sales live
    publish(store, "sales", "1.0", EXAMPLES / "sales", promote_now=True)
    Recorder(store).run()
    before = store.get(keys.RELEASE_KEY)
    # And a new project that declares sales' dag_id (the CLI cannot know; the gate sees all live projects)
    clash = tmp_path / "clash"
    clash.mkdir()
    (clash / "x.py").write_text("from airflow.sdk import DAG\nDAG('sales_refunds')\n")
    with BackgroundValidator(store):
        code, doc, err = run(capsys, "publish", "other", "1.0", str(clash), "--promote", "--wait", "--timeout", "60")
    assert code == 3
    assert "dag_id 'sales_refunds' is declared by more than one live project: other, sales" in err
    assert doc["reason"] == "dag_id 'sales_refunds' is declared by more than one live project: other, sales"
    assert store.get(keys.RELEASE_KEY) == before
    # And status shows it
    code, status, _ = run(capsys, "status")
    assert status["rejection"]["reason"] == doc["reason"]
    cli.main(["status"])
    assert "REJECTED manifest" in capsys.readouterr().out


def test_publish_wait_exits_5_when_a_later_write_replaced_the_change(store: S3Store,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    # Given a release of sales 1.0, then 2.0 promoted by this publisher
    publish(store, "sales", "1.0", EXAMPLES / "sales", promote_now=True)
    publish(store, "sales", "3.0", EXAMPLES / "finance")
    Recorder(store).run()

    # When someone else promotes 3.0 before the validator gets to 2.0
    def race() -> None:
        set_manifest(store, {"sales": "3.0"})
        Recorder(store).run()

    from dagsync.cli import changes
    from dagsync.publish import waiter

    original = waiter.wait_for_release

    def wait_after_race(*args: Any, **kwargs: Any) -> Any:
        race()
        return original(*args, **kwargs)

    mp = pytest.MonkeyPatch()
    mp.setattr(changes, "wait_for_release", wait_after_race)
    try:
        code, doc, err = run(capsys, "publish", "sales", "2.0", str(EXAMPLES / "marketing"), "--promote", "--wait",
                             "--timeout", "5")
    finally:
        mp.undo()
    # Then the publisher is told it did not win, and what is live instead
    assert code == 5 and doc["live_version"] == "3.0"
    assert "sales 2.0 is not live: a later manifest write made it 3.0" in err


def host(store: S3Store, name: str, sequence: int, **projects: str) -> None:
    status = HostStatus(host=name, sequence=sequence, projects=projects, agent_version="test",
                        updated_at=datetime.now(UTC))
    store.put(keys.host_status_key(name), dump_json(status))


def test_wait_hosts_names_the_lagging_hosts_and_exits_4(store: S3Store, capsys: pytest.CaptureFixture[str]) -> None:
    # Given two hosts at release 0, and sales 1.0 published, promoted and released (sequence 1)
    host(store, "host-1", 0)
    host(store, "host-2", 0)
    publish(store, "sales", "1.0", EXAMPLES / "sales", promote_now=True)
    assert Recorder(store).run().sequence == 1
    # And only host-1 has caught up (before anyone waits: nothing below races a clock)
    host(store, "host-1", 1, sales="1.0")
    # When the publish is run again and waits for all hosts (the release answers at once: same manifest)
    code, doc, err = run(capsys, "publish", "sales", "1.0", str(EXAMPLES / "sales"), "--promote",
                         "--wait-hosts", "--timeout", "2")
    # Then it exits 4 naming host-2 only
    assert code == 4 and doc["lagging_hosts"] == {"host-2": "at 0"}
    assert "host-2 (at 0)" in err and "host-1" not in err
    # When waiting for host-1 only, it succeeds
    code, doc, _ = run(capsys, "promote", "sales", "1.0", "--wait-hosts", "host-1", "--timeout", "5")
    assert code == 0 and doc["hosts"] == {"host-1": {"sequence": 1, "projects": {"sales": "1.0"}}}


def test_diff_shows_manifest_release_and_hosts(store: S3Store, capsys: pytest.CaptureFixture[str]) -> None:
    # Given sales 1.0 released, finance promoted but not yet released, host-1 behind
    publish(store, "sales", "1.0", EXAMPLES / "sales", promote_now=True)
    Recorder(store).run()
    host(store, "host-1", 0)
    host(store, "host-2", 1, sales="1.0")
    publish(store, "finance", "1.0", EXAMPLES / "finance", promote_now=True)
    code, doc, _ = run(capsys, "diff", "--exit-code")
    assert code == 6 and not doc["in_sync"] and doc["lagging_hosts"] == {"host-1": 0}
    rows = {r["project"]: r for r in doc["projects"]}
    assert rows["finance"] == {"project": "finance", "manifest": "1.0", "release": None,
                               "hosts": {"host-1": None, "host-2": None}, "pending": True, "hosts_differ": []}
    assert rows["sales"]["hosts_differ"] == ["host-1"]
    # When everything catches up
    Recorder(store).run()
    host(store, "host-1", 2, sales="1.0", finance="1.0")
    host(store, "host-2", 2, sales="1.0", finance="1.0")
    # Then diff says so and exits 0
    code, doc, _ = run(capsys, "diff", "--exit-code")
    assert code == 0 and doc["in_sync"]


def test_validate_a_manifest_against_the_bucket(store: S3Store, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    publish(store, "sales", "1.0", EXAMPLES / "sales")
    publish(store, "finance", "1.0", EXAMPLES / "finance")
    path = tmp_path / "manifest.yaml"
    path.write_text('projects:\n  sales: "1.0"\n  finance: "2.0"\n')
    # Offline only the schema is checked; with --bucket the versions are too
    assert run(capsys, "validate", str(path))[0] == 0
    code, doc, _ = run(capsys, "validate", str(path), "--bucket", BUCKET)
    assert code == 3 and doc["errors"] == ["finance 2.0: not in catalog/finance.yaml"]
    path.write_text('projects:\n  sales: "1.0"\n  finance: "1.0"\n')
    assert run(capsys, "validate", str(path), "--bucket", BUCKET)[0] == 0
    code, doc, _ = run(capsys, "validate", str(tmp_path / "nope.yaml"))
    assert code == 1 and "does not exist" in doc["error"]


def test_a_large_upload_shows_progress_on_stderr(store: S3Store, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    # Given a project with 5 MB of incompressible data
    big = tmp_path / "big"
    big.mkdir()
    (big / "data.bin").write_bytes(os.urandom(5 * 1024 * 1024))
    (big / "dag.py").write_text("from airflow.sdk import DAG\nDAG('big')\n")
    code, _, err = run(capsys, "publish", "big", "1.0", str(big), "--progress")
    assert code == 0 and "uploading big 1.0:" in err and "(100%)" in err
    # And a small one prints no progress
    code, _, err = run(capsys, "publish", "sales", "1.0", str(EXAMPLES / "sales"), "--progress")
    assert code == 0 and "uploading" not in err


def test_status_parse_cost_lists_the_live_projects_costliest_first(store: S3Store,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    # Given three live projects: two whose catalog entries record Airflow's parse time, one published without Airflow
    for project, seconds in (("light", 0.3), ("heavy", 4.2)):
        parsed = ParseRecord(airflow_version="3.3.2", seconds=seconds,
                             files={"dag.py": ParsedFile(dag_ids=[f"{project}_dag"], seconds=seconds)})
        write_direct(store, project, "1", archive_of(EXAMPLES / "marketing"), parse=parsed,
                     dag_ids=parsed.dag_ids)
    publish(store, "sales", "1.0", EXAMPLES / "sales", promote_now=True)
    Recorder(store).run()
    # When CI asks which team's DAGs cost the scheduler most
    code, doc, _ = run(capsys, "status", "--parse-cost")
    # Then they come costliest first, the unmeasured one last, with what they cost a DAG processor together
    assert code == 0
    assert [(p["project"], p["parse_seconds"]) for p in doc["projects"]] == [
        ("heavy", 4.2), ("light", 0.3), ("sales", None)]
    assert doc["total_seconds"] == 4.5 and doc["core_share"] == 0.15 and doc["measured"] == 2
    cli.main(["status", "--parse-cost"])
    text = capsys.readouterr().out
    assert text.index("heavy") < text.index("light") < text.index("sales")
    assert "(not measured: published without Airflow)" in text and "15.0% of a core" in text
    # And a project's history shows the parse time of each version
    code, history, _ = run(capsys, "history", "heavy")
    assert history["published"][0]["parse_seconds"] == 4.2 and history["published"][0]["airflow_version"] == "3.3.2"
    cli.main(["history", "heavy"])
    assert "parse 4.20 s" in capsys.readouterr().out


def test_publish_and_validate_say_which_checks_ran(store: S3Store, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    # Given no Airflow in this interpreter and none named: the ast checks, and the output says so
    code, doc, _ = run(capsys, "publish", "sales", "1.0", str(EXAMPLES / "sales"))
    assert code == 0 and doc["checked_with"]["parser"] == "ast" and doc["parse"] is None
    cli.main(["validate", str(EXAMPLES / "sales")])
    assert "checked with ast only (no Airflow here: pass --airflow-python" in capsys.readouterr().out
    # And an interpreter named but missing fails the command (exit 1), naming it; nothing is published
    code, doc, _ = run(capsys, "publish", "sales", "2.0", str(EXAMPLES / "sales"), "--airflow-python",
                       str(tmp_path / "nope"))
    assert code == 1 and doc["error"] == f"--airflow-python {tmp_path / 'nope'}: not an executable file"
    catalog = read_catalog(store, "sales")
    assert catalog is not None and [e.version for e in catalog.entries] == ["1.0"]
    # And a budget that contradicts itself is refused with both numbers
    code, doc, _ = run(capsys, "validate", str(EXAMPLES / "sales"), "--parse-warn", "9")
    assert code == 3 and doc["errors"] == ["parse budget: warn_above_seconds (9) is above refuse_above_seconds (5)"]


def test_who_published_is_recorded_in_the_catalog_the_manifest_and_the_release_and_history_shows_it(
        store: S3Store, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a publish from a GitHub Actions run, with AWS credentials (moto's STS answers GetCallerIdentity)
    for name, value in {"GITHUB_ACTOR": "octocat", "GITHUB_SHA": "feedfacecafebeef", "GITHUB_REPOSITORY": "acme/dags",
                        "GITHUB_RUN_ID": "7", "GITHUB_SERVER_URL": "https://github.com"}.items():
        monkeypatch.setenv(name, value)
    code, _, err = run(capsys, "publish", "sales", "1.0", str(EXAMPLES / "sales"), "--promote")
    assert code == 0, err
    # Then the catalog entry records the caller's STS identity and the run
    history = run(capsys, "history", "sales")[1]
    (entry,) = history["published"]
    identity = entry["publisher"]["identity"]
    assert identity.startswith("arn:aws:") and entry["published_by"] == "octocat"
    assert entry["publisher"]["commit"] == "feedfacecafebeef"
    assert entry["publisher"]["run_url"] == "https://github.com/acme/dags/actions/runs/7"
    # And the release built from that manifest write says who wrote it, and when
    assert Recorder(store).run().status == "accepted"
    root = json.loads(store.get(keys.RELEASE_KEY).data)  # type: ignore[union-attr]
    assert root["manifest"]["written_by"] == f"octocat (commit feedfacecafe, {entry['publisher']['run_url']}) as " \
                                             f"{identity}"
    assert root["manifest"]["written_at"] and root["manifest"]["etag"] == store.get(keys.MANIFEST_KEY).etag  # type: ignore[union-attr]
    # And `dagsync history` shows it to a person
    assert cli.main(["history", "sales"]) == 0
    assert f"published by octocat (commit feedfacecafe, https://github.com/acme/dags/actions/runs/7) as {identity}" \
        in capsys.readouterr().out
