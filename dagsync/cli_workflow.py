"""Workflow subcommands (`rollback`, `history`, `diff`, `validate`) and the `--wait-hosts` step, registered by
`dagsync.cli.build_parser`. Logic lives in `dagsync.workflow`; this module parses and prints."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from dagsync import constants
from dagsync.aws import AwsSettings
from dagsync.models import Release
from dagsync.progress import UploadProgress
from dagsync.store import S3Store
from dagsync.waiter import HostsLagging, Rejected, Superseded, wait_for_hosts
from dagsync.workflow import diff_report, history_report, rollback, validate_path

EXIT_INVALID = 3  # validate: the same rules the validator applies say no (as when it rejects)
EXIT_SUPERSEDED = 5
EXIT_DIFFERS = 6


def add_workflow_commands(sub: Any, aws: argparse.ArgumentParser, wait: argparse.ArgumentParser) -> None:
    p = sub.add_parser("rollback", parents=[aws, wait], help="make the version live before the current one live again")
    p.add_argument("project")
    p.add_argument("--to", metavar="VERSION", default=None,
                   help="roll back to this published version (default: the one live before the current one)")
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser("history", parents=[aws], help="published versions of a project and when each was live")
    p.add_argument("project")
    p.set_defaults(func=cmd_history)

    p = sub.add_parser("diff", parents=[aws], help="manifest (intent) vs release (validated) vs hosts (applied)")
    p.add_argument("--exit-code", action="store_true", help=f"exit {EXIT_DIFFERS} when anything differs")
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser("validate", help="check a manifest file, a DAG folder or an archive with the gate's rules")
    p.add_argument("path", type=Path, help="manifest.yaml, a DAG folder, or a .tar.gz archive")
    p.add_argument("--bucket", default=None,
                   help="also check a manifest's versions (and their dag_ids) against this bucket's catalogs")
    p.add_argument("--endpoint-url", default=os.environ.get(constants.ENV_ENDPOINT_URL))
    p.add_argument("--region", default=None)
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    p.set_defaults(func=cmd_validate)


def add_publish_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--progress", action="store_true",
                   help="show upload progress on stderr (default: only when stderr is a terminal)")


def attach_progress(args: argparse.Namespace, store: S3Store) -> None:
    if getattr(args, "progress", False) or sys.stderr.isatty():
        UploadProgress(f"{args.project} {args.version}").attach(store.client)


def wait_hosts(args: argparse.Namespace, store: S3Store, release: Release, doc: dict[str, Any]) -> str:
    """After --wait: wait for the hosts; returns a line of text (the doc gets a "hosts" entry)."""
    statuses = wait_for_hosts(store, release.sequence, args.wait_hosts or None, timeout=args.timeout)
    doc["hosts"] = {h: {"sequence": s.sequence, "projects": s.projects} for h, s in sorted(statuses.items())}
    if not statuses:
        return "hosts: none have reported a status yet (nothing to wait for)"
    return f"hosts: {', '.join(sorted(statuses))} applied release {release.sequence} or later"


def _cli() -> Any:
    from dagsync import cli

    return cli


def cmd_rollback(args: argparse.Namespace) -> int:
    cli = _cli()
    store = cli._store(args)
    live, target, change = rollback(store, args.project, args.to)
    doc = {"project": args.project, "from": live, "to": target}
    return int(cli._finish_change(args, store, change, doc))


def cmd_history(args: argparse.Namespace) -> int:
    cli = _cli()
    report = history_report(cli._store(args), args.project)
    lines = [f"{report['project']}: live {report['live'] or '-'}, manifest {report['manifest'] or '-'}"]
    for e in report["published"]:
        mark = "*" if e["live"] else " "
        seqs = ",".join(str(s) for s in e["live_in_releases"]) or "-"
        lines.append(f" {mark} {e['version']:<20} {e['published_at'][:19]}Z  by {e['published_by'] or '?':<16} "
                     f"sha256 {e['sha256'][:12]}  {e['files']} files  live in releases: {seqs}")
    cli._emit(args, report, "\n".join(lines))
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    cli = _cli()
    report = diff_report(cli._store(args))
    hosts = sorted(report["hosts"])
    lines = [f"release {report['release_sequence']}; " + ("in sync" if report["in_sync"] else "NOT in sync")]
    lines.append(f"  {'project':<24} {'manifest':<16} {'release':<16} " + " ".join(f"{h:<16}" for h in hosts))
    for r in report["projects"]:
        flag = " <- pending" if r["pending"] else (" <- hosts differ" if r["hosts_differ"] else "")
        cells = " ".join(f"{r['hosts'][h] or '-':<16}" for h in hosts)
        lines.append(f"  {r['project']:<24} {r['manifest'] or '-':<16} {r['release'] or '-':<16} {cells}{flag}")
    if report["rejection"]:
        lines.append(f"REJECTED manifest: {report['rejection']['reason']}")
    for h, seq in sorted(report["lagging_hosts"].items()):
        lines.append(f"host {h} is at release {seq}")
    for h, why in sorted(report["unreadable_hosts"].items()):
        lines.append(f"host {h}: {why}")
    cli._emit(args, report, "\n".join(lines))
    return EXIT_DIFFERS if args.exit_code and not report["in_sync"] else 0


def cmd_validate(args: argparse.Namespace) -> int:
    cli = _cli()
    if not args.path.exists():
        raise cli.PublishError(f"{args.path} does not exist")
    store = None
    if args.bucket:
        settings = AwsSettings.resolve(args.region, args.endpoint_url)
        store = S3Store(settings.client("s3"), args.bucket)
    result = validate_path(args.path, store)
    if result.ok:
        extra = f", dag_ids: {', '.join(result.details.get('dag_ids', [])) or '-'}" if result.kind != "manifest" else ""
        text = f"{args.path}: valid {result.kind}{extra}"
    else:
        text = f"{args.path}: INVALID {result.kind}\n" + "\n".join(f"  - {e}" for e in result.errors)
    cli._emit(args, result.as_dict(), text)
    return 0 if result.ok else EXIT_INVALID


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
