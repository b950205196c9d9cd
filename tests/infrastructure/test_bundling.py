"""The validator asset hash follows exactly what goes into the bundle."""

from __future__ import annotations

from pathlib import Path

from infra.bundling import PLATFORM, PYTHON_VERSION, pip_command, source_hash


def make_root(tmp_path: Path) -> Path:
    (tmp_path / "lambdas" / "validator").mkdir(parents=True)
    (tmp_path / "lambdas" / "validator" / "requirements.txt").write_text("PyYAML==6.0.3\n")
    (tmp_path / "dagsync").mkdir()
    (tmp_path / "dagsync" / "core.py").write_text("X = 1\n")
    return tmp_path


def test_the_hash_changes_with_code_and_requirements_but_not_with_bytecode(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    first = source_hash(root)
    (root / "dagsync" / "__pycache__").mkdir()
    (root / "dagsync" / "__pycache__" / "core.cpython-312.pyc").write_bytes(b"\0")
    assert source_hash(root) == first
    (root / "dagsync" / "core.py").write_text("X = 2\n")
    second = source_hash(root)
    assert second != first
    (root / "lambdas" / "validator" / "requirements.txt").write_text("PyYAML==6.0.2\n")
    assert source_hash(root) != second


def test_pip_targets_the_lambda_runtime_not_this_interpreter(tmp_path: Path) -> None:
    command = pip_command(tmp_path / "out", tmp_path / "req.txt")
    assert command[command.index("--platform") + 1] == PLATFORM == "manylinux2014_x86_64"
    assert command[command.index("--python-version") + 1] == PYTHON_VERSION == "3.12"
    assert "--only-binary=:all:" in command and str(tmp_path / "out") in command
