"""Manifest rules, offline: every refusal names its reason in words a person understands at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from dagsync.core.models import Manifest
from dagsync.core.serde import MAX_DOCUMENT_BYTES, DocumentError, load_yaml
from dagsync.publish.workflow import validate_path

BOMB = b'a: &a ["x","x","x"]\nb: &b [*a,*a,*a]\nprojects: {sales: "1"}\n'


def refuse(data: bytes) -> str:
    with pytest.raises(DocumentError) as info:
        load_yaml(Manifest, data, "manifest.yaml")
    return str(info.value)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"projects: [unclosed", "is not valid YAML"),
        (b"projects: {sales: '1'}\n" + b"#" * MAX_DOCUMENT_BYTES, "bytes; the limit is 1048576"),
        (BOMB, "YAML aliases are not allowed (line 2)"),
        (b"projects: {sales: '1'}\nowner: me\n", "owner: Extra inputs are not permitted"),
        (b"- sales\n- finance\n", "must be a mapping at the top level, not a list"),
        (b"just a string\n", "must be a mapping at the top level, not a str"),
        (b"", "manifest.yaml is empty"),
        (b"# only a comment\n", "manifest.yaml is empty"),
        (b"projects: {sales: '1'}\n\xff\xfe", "is not UTF-8"),
        (b"projects:\n  sales: '1.0'\n  sales: '2.0'\n", "duplicate key 'sales' (line 3)"),
        (b"projects: " + b"[" * 5000 + b"]" * 5000, "nested too deeply"),
        (b"schema_version: 2\nprojects: {sales: '1'}\n", "schema_version"),
        (b"projects:\n  sales: '1'\n---\nprojects: {}\n", "expected a single document"),
    ],
)
def test_a_hostile_or_broken_manifest_is_refused_with_its_reason(data: bytes, reason: str) -> None:
    # Given a manifest document that is broken in one way / When it is read / Then the reason says which way
    assert reason in refuse(data)


@pytest.mark.parametrize(
    "name", ["Sales", "../etc", ".hidden", "a/b", "-dash", "x" * 64, "sales report", "sälës", "a\\b", "."]
)
def test_a_project_name_that_is_not_a_safe_folder_name_is_refused(name: str) -> None:
    # Given a manifest naming a project that would be an unsafe folder on a host
    data = f'projects:\n  "{name}": "1.0.0"\n'.encode()
    # Then it is refused, naming the project and the rule
    assert "project name" in refuse(data) and "use 1-63 of a-z 0-9 _ -" in refuse(data)


@pytest.mark.parametrize("key", ["123", "yes", "null", "1.5"])
def test_a_project_key_that_yaml_reads_as_a_number_or_boolean_is_refused_with_a_hint(key: str) -> None:
    # Given `123: ...` or `yes: ...`, which YAML reads as int/bool/None/float, not a name
    reason = refuse(f'projects:\n  {key}: "1.0.0"\n'.encode())
    # Then the reason says what YAML made of it and to quote it
    assert "quote it" in reason


@pytest.mark.parametrize("version", ["1..2", "..", "../x", "a/b", ".1", "-1", "1 0", "v" * 65, ""])
def test_an_unsafe_version_string_is_refused(version: str) -> None:
    reason = refuse(f'projects:\n  sales: "{version}"\n'.encode())
    assert "version" in reason


def test_an_unquoted_version_yaml_reads_as_a_float_is_refused_with_a_hint() -> None:
    # Given `sales: 1.10`, which YAML reads as the float 1.1
    reason = refuse(b"projects:\n  sales: 1.10\n")
    # Then the reason shows the number YAML saw and says to quote it
    assert "YAML read 1.1 as float: quote it" in reason


def test_an_empty_project_set_is_refused_unless_the_manifest_says_so() -> None:
    assert "lists no projects" in refuse(b"projects: {}\n")
    assert "allow_empty: true" in refuse(b"projects: {}\n")
    assert load_yaml(Manifest, b"allow_empty: true\nprojects: {}\n", "m").projects == {}


def test_validate_path_checks_a_manifest_file_offline(tmp_path: Path) -> None:
    # Given a manifest file with two problems
    path = tmp_path / "manifest.yaml"
    path.write_text('projects:\n  Sales: "1.0"\n  finance: 2.0\n')
    # When validated offline
    result = validate_path(path)
    # Then both problems are reported, and nothing was checked against a bucket
    assert not result.ok and result.kind == "manifest"
    assert "project name 'Sales'" in result.errors[0] and "quote it" in result.errors[0]
    path.write_text('projects:\n  sales: "1.0"\n')
    ok = validate_path(path)
    assert ok.ok and ok.details == {"projects": {"sales": "1.0"}, "checked_against_bucket": False}
