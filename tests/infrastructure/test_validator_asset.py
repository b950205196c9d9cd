"""The synthesized validator asset is complete: a clean CPython 3.12 with nothing but the asset on its
path imports the handler named in the template and handles each recorded event against a moto server."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from dagsync.core import constants, keys, kms
from tests.infrastructure.conftest import Assembly
from tests.support.moto import LoopbackMoto

EVENTS_DIR = Path(__file__).resolve().parents[1] / "events"
RUNNER = Path(__file__).with_name("asset_runner.py")
HANDLER = "dagsync.lambdas.validator.lambda_handler"
STACK = "DagSync-dev"
BUCKET = "dagsync-asset-test"
REGION = "us-east-1"


def find_python312() -> str | None:
    candidates = [shutil.which("python3.12"), "/usr/bin/python3.12", "/usr/local/bin/python3.12",
                  *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12")), reverse=True)]
    for candidate in filter(None, candidates):
        try:
            probe = subprocess.run([candidate, "-I", "-S", "-c", "import sys; print(sys.version_info[:2])"],
                                   capture_output=True, text=True, timeout=30)
        except OSError:
            continue
        if probe.returncode == 0 and probe.stdout.strip() == "(3, 12)":
            return candidate
    return None


PYTHON312 = find_python312()
pytestmark = pytest.mark.skipif(
    PYTHON312 is None, reason="no CPython 3.12 found (the asset holds cp312 wheels for the Lambda runtime)"
)


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    with LoopbackMoto() as moto:
        yield moto.endpoint


@pytest.fixture(scope="module")
def aws(moto_server: str) -> dict[str, str]:
    """An empty bucket (no manifest) and the two topics, as the stack would provide them."""
    def client(service: str) -> Any:
        return boto3.client(service, endpoint_url=moto_server, region_name=REGION,
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    client("s3").create_bucket(Bucket=BUCKET)
    sns = client("sns")
    return {
        "endpoint": moto_server,
        "bucket": BUCKET,
        "topic": sns.create_topic(Name=constants.changes_topic_name("dagsync-dev"))["TopicArn"],
        "alerts": sns.create_topic(Name=constants.alerts_topic_name("dagsync-dev"))["TopicArn"],
        "signing_key": kms.create_signing_key(client("kms"), "alias/dagsync-dev-release-signing-1", "asset test"),
    }


def lambda_environment(template_env: dict[str, Any], aws: dict[str, str]) -> dict[str, str]:
    """The function's environment as declared in the template, with references replaced by moto's names."""
    references = {constants.ENV_BUCKET: aws["bucket"], constants.ENV_TOPIC_ARN: aws["topic"],
                  constants.ENV_ALERT_TOPIC_ARN: aws["alerts"], constants.ENV_SIGNING_KEY: aws["signing_key"]}
    env = {}
    for name, value in template_env.items():
        if isinstance(value, str):
            env[name] = value
        else:
            assert name in references, f"the template sets {name} from a reference this test cannot supply"
            env[name] = references[name]
    return env


def recorded_events() -> list[Path]:
    return sorted(EVENTS_DIR.glob("*.json"))


def run_handler(assembly: Assembly, aws: dict[str, str], event: Path, tmp_path: Path) -> dict[str, Any]:
    function = assembly.function(STACK, HANDLER)
    env = lambda_environment(function["Environment"]["Variables"], aws)
    env.update({
        constants.ENV_ENDPOINT_URL: aws["endpoint"], "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "POWERTOOLS_TRACE_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    })
    result_path = tmp_path / "result.json"
    proc = subprocess.run(
        [str(PYTHON312), "-I", "-S", str(RUNNER), str(assembly.asset_dir(STACK, HANDLER)), str(event),
         str(result_path)],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, f"handler failed on {event.name}:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return dict(json.loads(result_path.read_text()))


def test_the_template_names_the_handler_and_runtime(assembly: Assembly) -> None:
    function = assembly.function(STACK, HANDLER)
    assert function["Runtime"] == "python3.12"
    assert (assembly.asset_dir(STACK, HANDLER) / "dagsync" / "lambdas" / "validator.py").is_file()


def test_the_asset_holds_the_handler_the_gate_and_the_core_and_nothing_else_of_dagsync(assembly: Assembly) -> None:
    package = assembly.asset_dir(STACK, HANDLER) / "dagsync"
    modules = {p.relative_to(package).as_posix() for p in package.rglob("*.py")}
    assert {"__init__.py", "lambdas/validator.py", "gate/validator.py", "core/models.py"} <= modules
    parts = {m.split("/", 1)[0] for m in modules if "/" in m}
    assert parts == {"core", "gate", "lambdas"}, parts
    for absent in ("cli", "local", "agent", "publish"):
        assert not (package / absent).exists(), f"the Lambda asset carries dagsync/{absent}"


def test_there_are_recorded_events() -> None:
    assert recorded_events(), f"no recorded events in {EVENTS_DIR}"


@pytest.mark.parametrize("event", recorded_events(), ids=lambda p: p.stem)
def test_the_asset_handles_a_recorded_event_with_no_manifest(
    assembly: Assembly, aws: dict[str, str], event: Path, tmp_path: Path
) -> None:
    # Given an empty bucket (no manifest yet) and the asset directory alone on a 3.12 interpreter's path
    asset = assembly.asset_dir(STACK, HANDLER)
    # When the handler from the template handles the recorded event
    output = run_handler(assembly, aws, event, tmp_path)
    # Then it returns cleanly, using only code from the asset
    assert all(origin.startswith(str(asset)) for origin in output["origins"].values()), output["origins"]
    result = output["result"]
    if "Records" in json.loads(event.read_text()):
        assert result == {"batchItemFailures": []}
    else:
        assert isinstance(result, dict) and result.get("outcome"), result
    # And nothing was released from an empty bucket
    s3 = boto3.client("s3", endpoint_url=aws["endpoint"], region_name=REGION,
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    listed = s3.list_objects_v2(Bucket=aws["bucket"]).get("Contents", [])
    assert keys.RELEASE_KEY not in {o["Key"] for o in listed}
