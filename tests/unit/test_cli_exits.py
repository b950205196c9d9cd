"""One exit-status table: the code returns ExitStatus, and --help, the README and docs/validation.md show it."""

from __future__ import annotations

from pathlib import Path

import pytest

from dagsync.cli.exits import ExitStatus, markdown_table
from dagsync.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("doc", ["README.md", "docs/validation.md"])
def test_the_documents_show_the_table_of_the_code(doc: str) -> None:
    assert markdown_table() in (ROOT / doc).read_text(), f"{doc}: paste dagsync.cli.exits.markdown_table() in"


def test_help_lists_every_exit_status() -> None:
    epilog = build_parser().format_help()
    for status in ExitStatus:
        assert f"  {status.value}  " in epilog, status


def test_the_statuses_are_the_documented_numbers() -> None:
    assert [s.value for s in ExitStatus] == list(range(7))
