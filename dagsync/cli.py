"""`dagsync`: the publisher CLI that CI runs, plus `dagsync local up` (the embedded default).

Exit codes: 0 done; 1 refused or failed (the message says why, nothing live changed);
2 bad usage; 3 the validator rejected the manifest (--wait), or `validate` found it invalid;
4 timed out waiting (--wait, --wait-hosts: the lagging hosts are named); 5 superseded: a later manifest write
replaced this change (--wait); 6 `diff --exit-code` found a difference. See docs/validation.md."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from dagsync import __version__, constants
from dagsync.aws import AwsSettings
from dagsync.cli_workflow import (
    EXIT_SUPERSEDED,
    add_publish_options,
    add_workflow_commands,
    attach_progress,
    error_details,
    wait_hosts,
)
from dagsync.documents import ConflictError, read_manifest, read_rejection, read_release
from dagsync.models import HostStatus
from dagsync.publisher import ManifestChange, PublishError, promote, publish, retire
from dagsync.serde import DocumentError
from dagsync.store import S3Store
from dagsync.waiter import Rejected, Superseded, WaitTimeout, host_statuses, wait_for_release

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REJECTED, EXIT_TIMEOUT = 0, 1, 2, 3, 4


def _aws_options() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("where")
    g.add_argument("--bucket", default=os.environ.get(constants.ENV_BUCKET),
                   help=f"artifact bucket (default: ${constants.ENV_BUCKET})")
    g.add_argument("--endpoint-url", default=os.environ.get(constants.ENV_ENDPOINT_URL),
                   help=f"S3/SQS/SNS endpoint, e.g. the local stack's (default: ${constants.ENV_ENDPOINT_URL})")
    g.add_argument("--region", default=None, help="AWS region (default: $AWS_REGION, else us-east-1)")
    g.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    return p


def _wait_options() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--wait", action="store_true",
                   help="return when the release includes this change; exit 3 with the reason if rejected")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait (default: 120)")
    p.add_argument("--wait-hosts", nargs="*", metavar="HOST", default=None,
                   help="implies --wait; then wait until these hosts (default: every host with a status) "
                        "report the new release; exit 4 naming the hosts that lag")
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dagsync", description="Publish Airflow DAG projects to every host.",
                                     epilog="Exit codes: 0 ok, 1 refused/failed, 2 usage, 3 rejected/invalid, "
                                            "4 timeout, 5 superseded, 6 diff found differences "
                                            "(docs/validation.md).")
    parser.add_argument("--version", action="version", version=f"dagsync {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens to stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    aws, wait = _aws_options(), _wait_options()

    p = sub.add_parser("publish", parents=[aws, wait], help="package a DAG folder as an immutable version")
    p.add_argument("project", help="project name (a folder name on every host)")
    p.add_argument("version", help="the version to publish, e.g. a git SHA or 1.4.0")
    p.add_argument("directory", type=Path, help="the project's DAG folder")
    p.add_argument("--promote", action="store_true", help="also make this version live")
    p.add_argument("--published-by", default=None, help="recorded in the catalog (default: CI user)")
    add_publish_options(p)
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("promote", parents=[aws, wait], help="make a published version live (or roll back)")
    p.add_argument("project")
    p.add_argument("version")
    p.set_defaults(func=cmd_promote)

    p = sub.add_parser("retire", parents=[aws, wait], help="remove a project from every host")
    p.add_argument("project")
    p.add_argument("--allow-empty", action="store_true", help="allow retiring the last live project")
    p.set_defaults(func=cmd_retire)

    p = sub.add_parser("status", parents=[aws], help="manifest, release, rejection and hosts at a glance")
    p.set_defaults(func=cmd_status)
    add_workflow_commands(sub, aws, wait)

    local = sub.add_parser("local", help="the embedded default: everything on this machine, no AWS account")
    local_sub = local.add_subparsers(dest="local_command", required=True, metavar="COMMAND")
    p = local_sub.add_parser("up", help="start a moto server on 127.0.0.1, provision it, run the validator")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free port)")
    p.add_argument("--hosts", type=int, default=2, help="number of host queues, named host-1..host-N (default: 2)")
    p.add_argument("--schedule-interval", type=float, default=60.0,
                   help="seconds between scheduled validator runs (default: 60, as in AWS)")
    p.add_argument("--json", action="store_true", help="print one JSON line with the endpoints once ready")
    p.set_defaults(func=cmd_local_up)
    return parser


def _store(args: argparse.Namespace) -> S3Store:
    if not args.bucket:
        raise PublishError(f"no bucket: pass --bucket or set {constants.ENV_BUCKET}")
    settings = AwsSettings.resolve(args.region, args.endpoint_url)
    return S3Store(settings.client("s3"), args.bucket)


def _emit(args: argparse.Namespace, doc: dict[str, Any], text: str) -> None:
    print(json.dumps(doc, default=str) if args.json else text, flush=True)


def _finish_change(args: argparse.Namespace, store: S3Store, change: ManifestChange, doc: dict[str, Any]) -> int:
    doc["manifest"] = {"changed": change.changed, "previous": change.previous, "etag": change.etag}
    what = f"{change.project} -> {change.version}" if change.version else f"{change.project} retired"
    text = (f"manifest: {what} (was {change.previous or 'absent'})" if change.changed
            else f"manifest: {what} already")
    if args.wait or args.wait_hosts is not None:
        release = wait_for_release(store, change, timeout=args.timeout)
        doc["release"] = {"sequence": release.sequence, "published_at": release.published_at.isoformat()}
        text += f"\nreleased: sequence {release.sequence}"
        if args.wait_hosts is not None:
            text += "\n" + wait_hosts(args, store, release, doc)
    _emit(args, doc, text)
    return EXIT_OK


def cmd_publish(args: argparse.Namespace) -> int:
    store = _store(args)
    attach_progress(args, store)
    result = publish(store, args.project, args.version, args.directory, promote_now=args.promote,
                     published_by=args.published_by)
    doc: dict[str, Any] = {
        "project": result.project, "version": result.version, "sha256": result.sha256, "size": result.size,
        "files": result.files, "dag_ids": result.dag_ids, "archive_created": result.archive_created,
        "catalog_appended": result.catalog_appended,
    }
    text = (f"published {result.project} {result.version}: {result.files} files, {result.size} bytes, "
            f"sha256 {result.sha256[:12]}" + ("" if result.archive_created else " (identical; already published)"))
    if result.manifest is None:
        _emit(args, doc, text)
        return EXIT_OK
    if not args.json:
        print(text, flush=True)
    return _finish_change(args, store, result.manifest, doc)


def cmd_promote(args: argparse.Namespace) -> int:
    store = _store(args)
    return _finish_change(args, store, promote(store, args.project, args.version), {"project": args.project})


def cmd_retire(args: argparse.Namespace) -> int:
    store = _store(args)
    change = retire(store, args.project, allow_empty=args.allow_empty)
    return _finish_change(args, store, change, {"project": args.project})


def cmd_status(args: argparse.Namespace) -> int:
    store = _store(args)
    manifest, manifest_etag = read_manifest(store)
    release, _ = read_release(store)
    rejection = read_rejection(store)
    statuses = host_statuses(store)
    hosts = [s for s in statuses.values() if isinstance(s, HostStatus)]
    unreadable = {h: why for h, why in statuses.items() if isinstance(why, str)}
    current_rejection = rejection if rejection and rejection.manifest_etag == manifest_etag else None
    seq = release.sequence if release else 0
    doc = {
        "manifest": manifest.model_dump(mode="json")["projects"] if manifest else None,
        "release": release.model_dump(mode="json") if release else None,
        "rejection": current_rejection.model_dump(mode="json") if current_rejection else None,
        "hosts": [{**h.model_dump(mode="json"), "lag": seq - h.sequence} for h in hosts]
        + [{"host": h, "problem": why} for h, why in sorted(unreadable.items())],
    }
    lines = [f"release: sequence {seq}" + (f" ({release.published_at:%Y-%m-%d %H:%M:%S}Z)" if release else "")]
    for name in sorted(set(manifest.projects if manifest else {}) | set(release.projects if release else {})):
        want = manifest.projects.get(name, "-") if manifest else "-"
        live = release.projects[name].version if release and name in release.projects else "-"
        lines.append(f"  {name:<24} manifest {want:<16} released {live}")
    if current_rejection:
        lines.append(f"REJECTED manifest ({current_rejection.at:%H:%M:%S}Z): {current_rejection.reason}")
    for h in hosts:
        state = "ok" if h.sequence == seq and not h.last_error else ("error: " + h.last_error if h.last_error
                                                                   else f"lagging by {seq - h.sequence}")
        lines.append(f"host {h.host:<20} sequence {h.sequence:<6} {state} (seen {h.updated_at:%H:%M:%S}Z)")
    lines += [f"host {h:<20} {why}" for h, why in sorted(unreadable.items())]
    _emit(args, doc, "\n".join(lines))
    return EXIT_OK


def cmd_local_up(args: argparse.Namespace) -> int:
    from dagsync.local import LocalStack, default_hosts

    if args.hosts < 0 or not 0 <= args.port <= 65535 or args.schedule_interval <= 0:
        print("dagsync local up: --hosts >= 0, --port 0..65535 and --schedule-interval > 0", file=sys.stderr)
        return EXIT_USAGE
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    stack = LocalStack(port=args.port, hosts=default_hosts(args.hosts), schedule_interval=args.schedule_interval)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    info = stack.start()
    try:
        if args.json:
            print(json.dumps(info), flush=True)
        else:
            print(f"dagsync local stack ready at {info['endpoint_url']}\n"
                  f"  export {constants.ENV_ENDPOINT_URL}={info['endpoint_url']} "
                  f"{constants.ENV_BUCKET}={info['bucket']}\n"
                  + "".join(f"  host {h}: {u}\n" for h, u in info["host_queues"].items())
                  + "Ctrl-C to stop.", flush=True)
        # Bounded waits: a signal the kernel hands to one of moto's threads only runs its handler once the
        # main thread runs bytecode again.
        while not stop.wait(0.5):
            pass
    finally:
        stack.stop()
    return EXIT_OK


ERRORS: dict[type[BaseException], tuple[int, Callable[[BaseException], str]]] = {
    Rejected: (EXIT_REJECTED, str),
    Superseded: (EXIT_SUPERSEDED, str),
    WaitTimeout: (EXIT_TIMEOUT, str),
    PublishError: (EXIT_FAILED, str),
    DocumentError: (EXIT_FAILED, str),
    ConflictError: (EXIT_FAILED, str),
    ClientError: (EXIT_FAILED, lambda e: f"AWS error: {e}"),
    BotoCoreError: (EXIT_FAILED, lambda e: f"AWS error: {e}"),
}


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
            print(json.dumps({"error": message, "exit_code": code, **error_details(exc)}), flush=True)
        print(f"dagsync {args.command}: {message}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
