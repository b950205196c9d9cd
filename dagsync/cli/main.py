"""`dagsync`: the publisher CLI that CI runs, plus `dagsync local up` (the embedded default).

One registry (`COMMANDS`: each module adds its subcommands); one exit-status table (`dagsync.cli.exits`)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from dagsync import __version__
from dagsync.cli import changes, inspect, local
from dagsync.cli.exits import ExitStatus, epilog
from dagsync.cli.options import parents
from dagsync.core.documents import ConflictError
from dagsync.core.serde import DocumentError
from dagsync.publish.publisher import PublishError
from dagsync.publish.waiter import HostsLagging, Rejected, Superseded, WaitTimeout

COMMANDS = (changes, inspect, local)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dagsync", description="Publish Airflow DAG projects to every host.",
                                     epilog=epilog() + "\n(docs/validation.md)",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"dagsync {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens to stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = parents()
    for module in COMMANDS:
        module.register(sub, common)
    return parser


ERRORS: dict[type[BaseException], tuple[ExitStatus, Callable[[BaseException], str]]] = {
    Rejected: (ExitStatus.REJECTED, str),
    Superseded: (ExitStatus.SUPERSEDED, str),
    WaitTimeout: (ExitStatus.TIMEOUT, str),
    PublishError: (ExitStatus.FAILED, str),
    DocumentError: (ExitStatus.FAILED, str),
    ConflictError: (ExitStatus.FAILED, str),
    ClientError: (ExitStatus.FAILED, lambda e: f"AWS error: {e}"),
    BotoCoreError: (ExitStatus.FAILED, lambda e: f"AWS error: {e}"),
}


def error_details(exc: BaseException) -> dict[str, Any]:
    """Structured fields for `--json` error output, so CI need not parse messages."""
    if isinstance(exc, Rejected):
        r = exc.rejection
        return {"reason": r.reason, "errors": r.errors, "manifest_etag": r.manifest_etag, "superseded": exc.superseded}
    if isinstance(exc, Superseded):
        return {"live_version": exc.live_version, "release_sequence": exc.release.sequence}
    if isinstance(exc, HostsLagging):
        return {"release_sequence": exc.sequence, "lagging_hosts": exc.lagging}
    return {}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        return int(args.func(args))
    except tuple(ERRORS) as exc:
        code, describe = next(v for k, v in ERRORS.items() if isinstance(exc, k))
        message = describe(exc)
        if getattr(args, "json", False):
            print(json.dumps({"error": message, "exit_code": int(code), **error_details(exc)}), flush=True)
        print(f"dagsync {args.command}: {message}", file=sys.stderr)
        return int(code)


if __name__ == "__main__":
    sys.exit(main())
