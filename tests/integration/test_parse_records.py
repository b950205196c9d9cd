"""The validator with catalog entries that record what Airflow's DagBag found at publish (moto in-process): the
recorded dag_ids decide cross-project clashes, entries without a record fall back to `ast`, and the parse cost
travels into the release. The gate never runs DAG code; the real parse is in tests/e2e/test_parse_gate.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dagsync.core.documents import read_release
from dagsync.core.models import ParsedFile, ParseRecord
from dagsync.core.store import S3Store
from tests.integration.gate_helpers import assert_rejected, bare_store, write_direct
from tests.support.gate import Recorder, baseline
from tests.support.tars import tar_gz

# A factory: the dag_id is built at run time, so `ast` cannot see it; Airflow (at publish) found "sales_refunds".
FACTORY = b"from airflow.sdk import DAG\n\nfor part in ('refunds',):\n    DAG(dag_id='sales_' + part)\n"


def record(files: dict[str, list[str]], seconds: float = 0.5) -> ParseRecord:
    each = seconds / len(files)
    return ParseRecord(airflow_version="3.3.2", seconds=seconds,
                       files={path: ParsedFile(dag_ids=ids, seconds=each) for path, ids in files.items()})


@pytest.fixture
def store() -> Iterator[S3Store]:
    yield from bare_store()


def test_a_factory_made_clash_recorded_at_publish_is_rejected_naming_both_projects(store: S3Store) -> None:
    # Given sales 1.0.0 live (sales_refunds among its dag_ids), and a factory project whose catalog entry records
    # that Airflow found sales_refunds in it
    before = baseline(store)
    parsed = record({"factory.py": ["sales_refunds"]})
    write_direct(store, "factory", "1", tar_gz(("factory.py", FACTORY)), parse=parsed, dag_ids=parsed.dag_ids)
    # When the validator runs / Then it is rejected with both projects named, and the release is untouched
    assert_rejected(store, before, "dag_id 'sales_refunds' is declared by more than one live project: factory, sales")


def test_without_a_record_the_same_factory_falls_back_to_ast_which_cannot_see_it(store: S3Store) -> None:
    # Given the same factory published without Airflow (no parse record: ast only, as before this gate)
    baseline(store)
    write_direct(store, "factory", "1", tar_gz(("factory.py", FACTORY)))
    # When the validator runs
    outcome = Recorder(store).run()
    # Then ast finds no dag_id in it and the clash goes through (what the parse gate exists to catch)
    assert outcome.status == "accepted", outcome
    release, _ = read_release(store)
    assert release is not None and release.projects["factory"].dag_ids == []
    assert release.projects["factory"].parse_seconds is None


def test_the_release_carries_the_recorded_dag_ids_and_parse_cost_not_asts(store: S3Store) -> None:
    # Given a file that ast reads as declaring "twice" twice (one per branch) and the factory's ids not at all,
    # and a record of what Airflow found: "twice" once, and the factory's
    source = (b"from airflow.sdk import DAG\nimport os\n\nif os.environ.get('X'):\n    DAG('twice')\nelse:\n"
              b"    DAG('twice')\nfor n in range(2):\n    DAG(dag_id=f'made_{n}')\n")
    parsed = record({"dags.py": ["made_0", "made_1", "twice"]}, seconds=1.25)
    write_direct(store, "factory", "1", tar_gz(("dags.py", source)), parse=parsed, dag_ids=parsed.dag_ids)
    # When the validator runs
    outcome = Recorder(store).run()
    # Then ast's "declared more than once" is not held against it (Airflow decided), and the release entry has the
    # recorded dag_ids and the total parse time
    assert outcome.status == "accepted", outcome
    release, _ = read_release(store)
    assert release is not None
    assert release.projects["factory"].dag_ids == ["made_0", "made_1", "twice"]
    assert release.projects["factory"].parse_seconds == 1.25


def test_a_record_does_not_excuse_a_syntax_error(store: S3Store) -> None:
    # Given an entry whose record says all is well, over a file that does not compile
    before = baseline(store)
    write_direct(store, "factory", "1", tar_gz(("bad.py", b"def (:\n")), parse=record({"bad.py": ["x"]}))
    # Then the gate's own syntax check still refuses it
    assert_rejected(store, before, "bad.py:1: syntax error")
