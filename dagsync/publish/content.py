"""A project folder turned into an archive, and its DAG content checked before anything is uploaded: with `ast` (syntax
and the dag_ids it can see, nothing executed), or, when an Airflow interpreter is at hand, by Airflow's own DagBag in a
separate process (the real dag_ids and each file's parse time, held to the project's budget)."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagsync.core import constants
from dagsync.core.archive import DEFAULT_LIMITS, BuiltArchive, Limits, UnsafeArchive, build_archive, iter_members
from dagsync.core.dagcheck import inspect_members
from dagsync.core.models import ParseRecord, ProjectSettings
from dagsync.core.serde import DocumentError, load_yaml
from dagsync.publish.parsegate import BudgetError, budget_for, judge, timeout_for
from dagsync.publish.parsing import AirflowPython, DagBagChild, ParseFailed


class PublishError(Exception):
    """The publish was refused; the message says why and what to do. Nothing live changed. `problems`: each problem
    on its own, when there are several."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class AirflowUnavailable(PublishError):
    """Airflow could not be run at all (a broken interpreter, not bad DAGs)."""


@dataclass(frozen=True)
class Checks:
    """How DAG content is checked: `ast` only (airflow None), or also Airflow's DagBag with this interpreter.
    `refuse_above`/`warn_above` (seconds per file) override the project file's parse budget."""

    airflow: AirflowPython | None = None
    refuse_above: float | None = None
    warn_above: float | None = None


AST_ONLY = Checks()
NO_AIRFLOW = (f"no Airflow here: pass --airflow-python or set {constants.ENV_AIRFLOW_PYTHON} to parse with "
              "Airflow's DagBag")


@dataclass(frozen=True)
class Packaged:
    built: BuiltArchive
    dag_ids: list[str]
    parse: ParseRecord | None = None  # set when Airflow parsed it
    warnings: list[str] = field(default_factory=list)
    checked_with: dict[str, Any] = field(default_factory=dict)

    @property
    def checked_with_text(self) -> str:
        """Which checks ran, and what they found, in a line."""
        c = self.checked_with
        if self.parse is None:
            return f"checked with ast only ({c.get('why', NO_AIRFLOW)}): {len(self.dag_ids)} dag_ids"
        return (f"parsed by Airflow {self.parse.airflow_version}'s DagBag ({c['python']}, from {c['chosen_by']}): "
                f"{len(self.dag_ids)} dag_ids in {len(self.parse.files)} DAG files, {self.parse.seconds:.2f} s")


def project_settings(source: Path) -> ProjectSettings:
    """`dagsync.yaml` at the top of the folder, or the defaults when there is none."""
    path = source / ProjectSettings.file_name
    if not path.is_file():
        return ProjectSettings()
    try:
        return load_yaml(ProjectSettings, path.read_bytes(), ProjectSettings.file_name)
    except DocumentError as exc:
        raise PublishError(str(exc)) from None


def _build(source: Path, limits: Limits) -> BuiltArchive:
    try:
        built = build_archive(source, limits)
    except (UnsafeArchive, FileNotFoundError) as exc:
        raise PublishError(str(exc)) from None
    if built.size > limits.max_compressed_bytes:
        raise PublishError(f"archive is {built.size} bytes; the limit is {limits.max_compressed_bytes}")
    return built


def package(source: Path, project: str, checks: Checks = AST_ONLY, limits: Limits = DEFAULT_LIMITS) -> Packaged:
    """Build the archive and check its DAG content; PublishError says everything that is wrong."""
    if not source.is_dir():
        raise PublishError(f"{source} is not a folder")
    try:
        budget = budget_for(project_settings(source), checks.refuse_above, checks.warn_above)
    except BudgetError as exc:
        raise PublishError(str(exc)) from None
    try:
        with DagBagChild(checks.airflow) if checks.airflow else contextlib.nullcontext() as child:
            built = _build(source, limits)  # Airflow imports in the child meanwhile
            report = inspect_members(iter_members(io.BytesIO(built.data), limits), duplicates=child is None)
            if report.errors:
                raise PublishError("DAG content refused: " + "; ".join(report.errors), report.errors)
            if child is None:
                return Packaged(built, report.dag_ids, checked_with={"parser": "ast", "why": NO_AIRFLOW})
            result = child.parse(project, built.data, timeout_for(budget))
    except ParseFailed as exc:
        raise AirflowUnavailable(f"cannot parse with Airflow: {exc}") from None
    verdict = judge(result, budget)
    if verdict.errors:
        raise PublishError(f"DAG content refused by Airflow {result.airflow_version}'s DagBag: "
                           + "; ".join(verdict.errors), verdict.errors)
    checked = {"parser": "airflow", "airflow_version": result.airflow_version, "python": str(result.python.path),
               "chosen_by": result.python.chosen_by, "budget": budget.model_dump(),
               "airflow_startup_seconds": round(result.startup_seconds, 3), "network": result.network}
    return Packaged(built, verdict.record.dag_ids, verdict.record, verdict.warnings, checked)
