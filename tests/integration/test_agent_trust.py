"""`dagsync-agent once` (in this process, against moto) and the releases the validator signed with its KMS key: it
applies them with the public key pinned in a file or, opted in, fetched from KMS; it refuses every hand-written
form and exits 1 saying why, with nothing applied."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from dagsync.agent.cli import main
from dagsync.core.store import S3Store
from dagsync.lambdas.invoke import InvocationContext
from dagsync.local.stack import write_trusted_key
from dagsync.publish.publisher import publish
from tests.integration.conftest import event
from tests.support.forgery import EVIL, FORMS, forge
from tests.support.projects import EXAMPLES


@pytest.fixture
def released(aws: dict[str, Any], store: S3Store, handler: Any, tmp_path: Path) -> Path:
    """Releases 1 (sales) and 2 (sales, finance) by the validator Lambda; returns the pinned public key's file."""
    publish(store, "sales", "1.0.0", EXAMPLES / "sales", promote_now=True, published_by="ci")
    assert handler.lambda_handler(event("scheduled.json"), InvocationContext())["outcome"] == "accepted"
    publish(store, "finance", "1.0.0", EXAMPLES / "finance", promote_now=True, published_by="ci")
    assert handler.lambda_handler(event("scheduled.json"), InvocationContext())["outcome"] == "accepted"
    return write_trusted_key(aws["settings"], aws["signing_key_arn"], tmp_path / "keys" / "release-signing.pem")


def once(aws: dict[str, Any], dags: Path, *trust: str) -> int:
    return main(["once", "--dags-dir", str(dags), "--bucket", aws["bucket"], *trust])


def linked(dags: Path) -> list[str]:
    return sorted(p.name for p in dags.iterdir() if p.is_symlink()) if dags.exists() else []


def test_once_applies_the_validators_release_with_the_pinned_key(aws: dict[str, Any], released: Path,
                                                                  tmp_path: Path) -> None:
    assert once(aws, tmp_path / "dags", "--trusted-keys", str(released)) == 0
    assert linked(tmp_path / "dags") == ["finance", "sales"]


def test_once_fetches_the_key_from_kms_only_when_opted_in(aws: dict[str, Any], released: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    # Given the opt-in naming the environment's key / Then the release is applied
    assert once(aws, tmp_path / "a", "--trusted-kms-keys", aws["signing_key_arn"]) == 0
    assert linked(tmp_path / "a") == ["finance", "sales"]
    # And a key KMS cannot give is a failed start (exit 1) that names it, with nothing applied
    assert once(aws, tmp_path / "b", "--trusted-kms-keys", "alias/no-such-key") == 1
    assert "alias/no-such-key" in capsys.readouterr().err and linked(tmp_path / "b") == []


@pytest.mark.parametrize("form", list(FORMS))
def test_once_refuses_a_hand_written_release_and_says_why(
    form: str, aws: dict[str, Any], store: S3Store, released: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str]
) -> None:
    # Given release.json written by hand in this form (release 1 put back, or release 2 plus a project that never
    # passed the gate)
    forge(store, form, tmp_path / "forged")
    capsys.readouterr()
    # When an init container runs `once`, for everything or only for the forged project
    for dags, extra in ((tmp_path / "all", []), (tmp_path / "one", ["--project", EVIL])):
        rc = once(aws, dags, "--trusted-keys", str(released), *extra)
        # Then it fails, says release.json was refused and why, and nothing is linked
        err = capsys.readouterr().err
        assert rc == 1 and "release.json refused" in err, err
        assert ("signature" in err) if FORMS[form] != "older_release" else ("older release put back" in err)
        assert linked(dags) == [] and not os.path.lexists(dags / EVIL)
