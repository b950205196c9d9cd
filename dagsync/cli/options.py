"""What every command shares: the option groups, the store they name, and how a result is printed."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from typing import Any

from dagsync.core import constants
from dagsync.core.aws import AwsSettings, caller_identity
from dagsync.core.models import Publisher
from dagsync.core.store import S3Store
from dagsync.publish import provenance
from dagsync.publish.content import Checks
from dagsync.publish.parsing import ParseFailed, find_airflow_python
from dagsync.publish.publisher import PublishError


@dataclass(frozen=True)
class Parents:
    """Option groups a command's parser inherits: where the bucket is, and how to wait."""

    aws: argparse.ArgumentParser
    wait: argparse.ArgumentParser
    parse: argparse.ArgumentParser


def parents() -> Parents:
    aws = argparse.ArgumentParser(add_help=False)
    g = aws.add_argument_group("where")
    g.add_argument("--bucket", default=os.environ.get(constants.ENV_BUCKET),
                   help=f"artifact bucket (default: ${constants.ENV_BUCKET})")
    g.add_argument("--endpoint-url", default=os.environ.get(constants.ENV_ENDPOINT_URL),
                   help=f"S3/SQS/SNS endpoint, e.g. the local stack's (default: ${constants.ENV_ENDPOINT_URL})")
    g.add_argument("--region", default=None, help="AWS region (default: $AWS_REGION, else us-east-1)")
    g.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    wait = argparse.ArgumentParser(add_help=False)
    wait.add_argument("--wait", action="store_true",
                      help="return when the release includes this change; exit 3 with the reason if rejected")
    wait.add_argument("--timeout", type=float, default=120.0, help="seconds to wait (default: 120)")
    wait.add_argument("--wait-hosts", nargs="*", metavar="HOST", default=None,
                      help="implies --wait; then wait until these hosts (default: every host with a status) "
                           "report the new release; exit 4 naming the hosts that lag")
    parse = argparse.ArgumentParser(add_help=False)
    g = parse.add_argument_group("parsing with Airflow")
    g.add_argument("--airflow-python", metavar="PATH", default=None,
                   help="an interpreter that can import airflow: parse the DAG files with Airflow's DagBag, in a "
                        f"separate process without credentials (default: ${constants.ENV_AIRFLOW_PYTHON}, else this "
                        "interpreter if it can import airflow, else the ast checks only)")
    g.add_argument("--parse-budget", metavar="SECONDS", type=float, default=None,
                   help="refuse a DAG file whose parse takes longer (default: parse.refuse_above_seconds in the "
                        "project's dagsync.yaml, else 5)")
    g.add_argument("--parse-warn", metavar="SECONDS", type=float, default=None,
                   help="warn about a DAG file whose parse takes longer (default: parse.warn_above_seconds in the "
                        "project's dagsync.yaml, else 1)")
    return Parents(aws=aws, wait=wait, parse=parse)


def checks_of(args: argparse.Namespace) -> Checks:
    """How the DAG files are checked: with Airflow when an interpreter is named or at hand, else with ast."""
    try:
        python = find_airflow_python(args.airflow_python, os.environ)
    except ParseFailed as exc:
        raise PublishError(str(exc)) from None
    return Checks(airflow=python, refuse_above=args.parse_budget, warn_above=args.parse_warn)


def store_of(args: argparse.Namespace) -> S3Store:
    if not args.bucket:
        raise PublishError(f"no bucket: pass --bucket or set {constants.ENV_BUCKET}")
    settings = AwsSettings.resolve(args.region, args.endpoint_url)
    return S3Store(settings.client("s3"), args.bucket)


def publisher_of(args: argparse.Namespace) -> Publisher:
    """Who this command publishes as: the caller's AWS identity (STS), the CI's metadata or the OS user, and
    --published-by when given."""
    identity = caller_identity(AwsSettings.resolve(args.region, args.endpoint_url))
    return provenance.current(identity, user=getattr(args, "published_by", None))


def emit(args: argparse.Namespace, doc: dict[str, Any], text: str) -> None:
    """One JSON document with --json, else the text."""
    print(json.dumps(doc, default=str) if args.json else text, flush=True)
