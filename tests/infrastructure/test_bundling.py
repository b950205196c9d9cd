"""The validator asset hash follows exactly what goes into the bundle: the core, the gate, the handler and the
Lambda's requirements; never the CLI, the agent or the local stack."""

from __future__ import annotations

import shutil
from pathlib import Path

from infra.bundling import PLATFORM, PYTHON_VERSION, REPO_ROOT, REQUIREMENTS, pip_command, source_hash


def copy_of_the_repository(tmp_path: Path) -> Path:
    """The package and the Lambda's room, as they are in this checkout (bytecode left behind)."""
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO_ROOT / "dagsync", tmp_path / "dagsync", ignore=skip)
    shutil.copytree(REPO_ROOT / REQUIREMENTS.parent, tmp_path / REQUIREMENTS.parent, ignore=skip)
    return tmp_path


def touch(path: Path) -> None:
    path.write_text(path.read_text() + "\n# edited\n")


def test_the_hash_changes_with_the_code_the_lambda_runs_and_its_requirements(tmp_path: Path) -> None:
    root = copy_of_the_repository(tmp_path)
    first = source_hash(root)
    (root / "dagsync" / "core" / "__pycache__").mkdir(exist_ok=True)
    (root / "dagsync" / "core" / "__pycache__" / "models.cpython-312.pyc").write_bytes(b"\0")
    assert source_hash(root) == first
    for edited in ("core/models.py", "gate/validator.py", "lambdas/validator.py", "__init__.py"):
        before = source_hash(root)
        touch(root / "dagsync" / edited)
        assert source_hash(root) != before, edited
    before = source_hash(root)
    (root / REQUIREMENTS).write_text((root / REQUIREMENTS).read_text() + "six==1.16.0\n")
    assert source_hash(root) != before


def test_editing_the_cli_the_agent_or_the_local_stack_leaves_the_hash_unchanged(tmp_path: Path) -> None:
    root = copy_of_the_repository(tmp_path)
    first = source_hash(root)
    for edited in ("cli/main.py", "cli/changes.py", "agent/sync.py", "local/stack.py", "local/demo.py",
                   "publish/publisher.py"):
        touch(root / "dagsync" / edited)
    assert source_hash(root) == first


def test_pip_targets_the_lambda_runtime_not_this_interpreter(tmp_path: Path) -> None:
    command = pip_command(tmp_path / "out", tmp_path / "req.txt")
    assert command[command.index("--platform") + 1] == PLATFORM == "manylinux2014_x86_64"
    assert command[command.index("--python-version") + 1] == PYTHON_VERSION == "3.12"
    assert "--only-binary=:all:" in command and str(tmp_path / "out") in command
