"""Static checks of DAG content: syntax and dag_ids, found with `ast`. Nothing published is executed."""

from __future__ import annotations

import ast
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import chain

from dagsync.core.archive import Member


@dataclass
class ContentReport:
    files: int = 0
    uncompressed_size: int = 0
    dag_ids: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _const_str(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _callee(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _dag_id_of_call(call: ast.Call) -> str | None:
    for kw in call.keywords:
        if kw.arg == "dag_id":
            return _const_str(kw.value)
    return _const_str(call.args[0]) if call.args else None


def dag_ids_in(tree: ast.AST) -> list[str]:
    """dag_ids declared with `DAG("id")`, `DAG(dag_id="id")`, `with DAG(...)`, `@dag` or `@dag(dag_id=...)`."""
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _callee(node.func) == "DAG":
            dag_id = _dag_id_of_call(node)
            if dag_id:
                found.append(dag_id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for deco in node.decorator_list:
                if _callee(deco) == "dag":
                    found.append(node.name)
                elif isinstance(deco, ast.Call) and _callee(deco.func) == "dag":
                    found.append(_dag_id_of_call(deco) or node.name)
    return found


def inspect_members(members: Iterable[Member], *, duplicates: bool = True) -> ContentReport:
    """Compile every .py file (syntax only) and collect dag_ids. Errors are collected, not raised. `duplicates`: a
    dag_id found twice is an error (not when Airflow's parse, which knows better, decides that instead)."""
    report = ContentReport()
    for member in members:
        if member.is_dir:
            continue
        report.files += 1
        report.uncompressed_size += len(member.data)
        if not member.name.endswith(".py"):
            continue
        try:
            tree = compile(member.data, member.name, "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True)
        except SyntaxError as exc:
            where = f"{member.name}:{exc.lineno}" if exc.lineno else member.name
            report.errors.append(f"{where}: syntax error: {exc.msg}")
            continue
        except ValueError as exc:  # e.g. null bytes
            report.errors.append(f"{member.name}: cannot be compiled: {exc}")
            continue
        except (RecursionError, MemoryError):  # e.g. 100,000 nested unary operators
            report.errors.append(f"{member.name}: nested too deeply to compile")
            continue
        report.dag_ids.extend(dag_ids_in(tree))
    dupes = sorted({d for d in report.dag_ids if report.dag_ids.count(d) > 1})
    if dupes and duplicates:
        report.errors.append(f"dag_id declared more than once in the project: {', '.join(dupes)}")
    report.dag_ids = sorted(set(report.dag_ids))
    return report


def duplicate_dag_ids(declared: Mapping[str, Collection[str]]) -> list[str]:
    """One problem per dag_id that more than one live project declares (project -> its dag_ids; rule D4). When no
    dag_id appears twice at all (the usual case), one set of them all says so: at 10,000 projects of ten DAGs, 4 ms
    where a dict insert per dag_id took 24 (and grouping every dag_id and sorting them all, 300)."""
    if len(set(chain.from_iterable(declared.values()))) == sum(map(len, declared.values())):
        return []
    first: dict[str, str] = {}
    clashes: dict[str, set[str]] = {}
    for project, dag_ids in declared.items():
        for dag_id in dag_ids:
            owner = first.setdefault(dag_id, project)
            if owner != project:
                clashes.setdefault(dag_id, {owner}).add(project)
    return [
        f"dag_id {dag_id!r} is declared by more than one live project: {', '.join(sorted(projects))}"
        for dag_id, projects in sorted(clashes.items())
    ]
