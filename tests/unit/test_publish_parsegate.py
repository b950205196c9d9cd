"""The parse gate's rules on what Airflow reported (plain values, no Airflow): the budget and where it comes from,
refusals and warnings with the file, its time and the budget, and the record kept in the catalog."""

from __future__ import annotations

from pathlib import Path

import pytest

from dagsync.core.models import ParseBudget, ProjectSettings
from dagsync.core.serde import load_yaml
from dagsync.publish.parsegate import BudgetError, budget_for, judge, summarize, timeout_for
from dagsync.publish.parsing import AirflowPython, FileResult, ParseResult

SCRATCH = "/tmp/dagsync-parse-x1/dags"
PYTHON = AirflowPython(Path("/opt/airflow/bin/python"), "--airflow-python")
TRACEBACK = f"""Traceback (most recent call last):
  File "<frozen importlib._bootstrap>", line 241, in _call_with_frames_removed
  File "{SCRATCH}/sales/broken.py", line 3, in <module>
    from sales.lib import helper
  File "{SCRATCH}/sales/lib/helper.py", line 7, in <module>
    import pandaz
ModuleNotFoundError: No module named 'pandaz'
"""


def result(*files: FileResult) -> ParseResult:
    return ParseResult("3.3.2", PYTHON, SCRATCH, list(files))


def test_flags_override_the_project_file_which_overrides_the_defaults() -> None:
    # Given a project file that raises the refusal threshold only
    settings = load_yaml(ProjectSettings, b"parse:\n  refuse_above_seconds: 8\n", "dagsync.yaml")
    # Then the defaults fill in, the file wins over them, and a flag wins over the file
    assert budget_for(ProjectSettings()) == ParseBudget(refuse_above_seconds=5, warn_above_seconds=1)
    assert budget_for(settings) == ParseBudget(refuse_above_seconds=8, warn_above_seconds=1)
    assert budget_for(settings, refuse_above=2.5) == ParseBudget(refuse_above_seconds=2.5, warn_above_seconds=1)
    assert budget_for(settings, warn_above=3) == ParseBudget(refuse_above_seconds=8, warn_above_seconds=3)
    # And a file is stopped one second past its budget: it is refused either way
    assert timeout_for(budget_for(settings)) == 9.0


def test_a_warning_threshold_above_the_refusal_is_refused_naming_both() -> None:
    with pytest.raises(BudgetError, match=r"warn_above_seconds \(6\) is above refuse_above_seconds \(5\)"):
        budget_for(ProjectSettings(), warn_above=6)
    with pytest.raises(BudgetError, match="refuse_above_seconds"):
        budget_for(ProjectSettings(), refuse_above=0)


def test_the_project_file_refuses_unknown_keys() -> None:
    from dagsync.core.serde import DocumentError

    with pytest.raises(DocumentError, match="Extra inputs"):
        load_yaml(ProjectSettings, b"parse:\n  refuse_above: 8\n", "dagsync.yaml")


def test_a_file_over_the_budget_is_refused_with_its_time_and_the_budget() -> None:
    # Given one file that parsed in 5.61 s, one in 1.2 s and one in 0.1 s, against the default budget
    verdict = judge(result(FileResult("slow.py", 5.61, ["a"]), FileResult("meh.py", 1.2, ["b"]),
                           FileResult("ok.py", 0.1, ["c"])), ParseBudget())
    # Then the slow one is refused with its time and the budget, the middle one only warned about
    assert verdict.errors == ["slow.py: parsing took 5.61 s; the budget is 5 s per file "
                              "(parse.refuse_above_seconds in dagsync.yaml, or --parse-budget)"]
    assert verdict.warnings == ["meh.py: parsing took 1.20 s (a warning above 1 s per file; refused above 5 s)"]


def test_a_file_stopped_at_the_timeout_is_refused() -> None:
    verdict = judge(result(FileResult("forever.py", 6.01, stopped=True)), ParseBudget())
    assert verdict.errors == ["forever.py: parsing was stopped after 6.0 s; the budget is 5 s per file "
                              "(parse.refuse_above_seconds in dagsync.yaml, or --parse-budget)"]


def test_an_import_error_is_refused_with_airflows_message_and_where_in_the_project() -> None:
    verdict = judge(result(FileResult("broken.py", 0.2, errors=[TRACEBACK])), ParseBudget())
    assert verdict.errors == ["broken.py: Airflow could not load it: ModuleNotFoundError: No module named 'pandaz' "
                              "(at sales/lib/helper.py:7)"]
    assert SCRATCH not in verdict.errors[0]


def test_top_level_code_that_ends_the_process_is_refused() -> None:
    verdict = judge(result(FileResult("quits.py", 0.01, exit=3)), ParseBudget())
    assert verdict.errors == ["quits.py: the parse ended without a result: top-level code ended the process "
                              "(exit status 3)"]


def test_a_dag_id_made_by_two_files_is_refused_naming_both() -> None:
    verdict = judge(result(FileResult("a.py", 0.1, ["x", "shared"]), FileResult("b.py", 0.1, ["shared"])),
                    ParseBudget())
    assert verdict.errors == ["dag_id 'shared' is defined in more than one file: a.py, b.py"]


def test_the_record_holds_each_files_dag_ids_and_time_the_total_and_the_airflow_version() -> None:
    verdict = judge(result(FileResult("z.py", 0.25, ["z2", "z1"]), FileResult("lib/a.py", 0.0004, [])),
                    ParseBudget())
    record = verdict.record
    assert (verdict.errors, verdict.warnings) == ([], [])
    assert record.airflow_version == "3.3.2"
    assert list(record.files) == ["lib/a.py", "z.py"]
    assert record.files["z.py"].dag_ids == ["z1", "z2"] and record.files["z.py"].seconds == 0.25
    assert record.files["lib/a.py"].seconds == 0.0
    assert record.seconds == 0.25 and record.dag_ids == ["z1", "z2"]


@pytest.mark.parametrize(("message", "expected"), [
    ("", "(Airflow gave no message)"),
    ("AirflowDagCycleException: Cycle detected in DAG: d", "AirflowDagCycleException: Cycle detected in DAG: d"),
    (f'  File "{SCRATCH}/p/x.py", line 2, in <module>\nValueError: ' + "v" * 900, "ValueError: " + "v" * 488
     + " (at p/x.py:2)"),
])
def test_airflows_messages_come_down_to_one_line(message: str, expected: str) -> None:
    assert summarize(message, SCRATCH) == expected
