"""The parse gate's rules, as pure functions: what Airflow's DagBag found in a project (dagsync.publish.parsing)
against the project's parse-time budget, turned into refusals, warnings and the record kept in the catalog."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import ValidationError

from dagsync.core.models import ParseBudget, ParsedFile, ParseRecord, ProjectSettings
from dagsync.publish.parsing import FileResult, ParseResult

STOP_AFTER_BUDGET_S = 1.0  # a file still parsing this long after the budget is stopped: it is refused either way
MAX_MESSAGE = 500
_FRAME = re.compile(r'File "([^"]+)", line (\d+)')
_WHERE = "parse.refuse_above_seconds in dagsync.yaml, or --parse-budget"


class BudgetError(ValueError):
    """The budget asked for (flags over the project file) is not a budget."""


def budget_for(settings: ProjectSettings, refuse_above: float | None = None,
               warn_above: float | None = None) -> ParseBudget:
    """Flags over the project file over the defaults."""
    fields = settings.parse.model_dump()
    if refuse_above is not None:
        fields["refuse_above_seconds"] = refuse_above
    if warn_above is not None:
        fields["warn_above_seconds"] = warn_above
    try:
        return ParseBudget(**fields)
    except ValidationError as exc:
        raise BudgetError("parse budget: " + "; ".join(
            "".join(f"{p}: " for p in e["loc"]) + e["msg"].removeprefix("Value error, ") for e in exc.errors())
        ) from None


def timeout_for(budget: ParseBudget) -> float:
    return budget.refuse_above_seconds + STOP_AFTER_BUDGET_S


def summarize(message: str, dags_folder: str) -> str:
    """Airflow's message (often a traceback) in one line: the exception and where in the project it was raised,
    with the scratch folder's path left out."""
    text = message.replace(dags_folder.rstrip("/") + "/", "")
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return "(Airflow gave no message)"
    last = lines[-1][:MAX_MESSAGE]
    inside = [m for m in _FRAME.finditer(text) if not m.group(1).startswith(("/", "<"))]
    return f"{last} (at {inside[-1].group(1)}:{inside[-1].group(2)})" if inside else last


@dataclass(frozen=True)
class Verdict:
    errors: list[str]
    warnings: list[str]
    record: ParseRecord


def _file_problems(f: FileResult, budget: ParseBudget, dags_folder: str) -> tuple[list[str], list[str]]:
    if f.stopped:
        return [f"{f.path}: parsing was stopped after {f.seconds:.1f} s; the budget is "
                f"{budget.refuse_above_seconds:g} s per file ({_WHERE})"], []
    if f.exit is not None:
        return [f"{f.path}: the parse ended without a result: top-level code ended the process "
                f"(exit status {f.exit})"], []
    errors = [f"{f.path}: Airflow could not load it: {summarize(m, dags_folder)}" for m in f.errors]
    if f.seconds > budget.refuse_above_seconds:
        errors.append(f"{f.path}: parsing took {f.seconds:.2f} s; the budget is {budget.refuse_above_seconds:g} s "
                      f"per file ({_WHERE})")
    elif f.seconds > budget.warn_above_seconds:
        return errors, [f"{f.path}: parsing took {f.seconds:.2f} s (a warning above "
                        f"{budget.warn_above_seconds:g} s per file; refused above {budget.refuse_above_seconds:g} s)"]
    return errors, []


def judge(result: ParseResult, budget: ParseBudget) -> Verdict:
    errors: list[str] = []
    warnings: list[str] = []
    owners: dict[str, list[str]] = {}
    for f in result.files:
        problems, notes = _file_problems(f, budget, result.dags_folder)
        errors += problems
        warnings += notes
        for dag_id in f.dag_ids:
            owners.setdefault(dag_id, []).append(f.path)
    errors += [f"dag_id {d!r} is defined in more than one file: {', '.join(sorted(paths))}"
               for d, paths in sorted(owners.items()) if len(paths) > 1]
    record = ParseRecord(
        airflow_version=result.airflow_version,
        seconds=round(sum(f.seconds for f in result.files), 3),
        files={f.path: ParsedFile(dag_ids=sorted(f.dag_ids), seconds=round(f.seconds, 3))
               for f in sorted(result.files, key=lambda f: f.path)},
    )
    return Verdict(errors, warnings, record)
