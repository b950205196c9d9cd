"""Commands that change what is live: `publish`, `promote`, `retire`, `rollback`; with `--wait` and
`--wait-hosts`, they report what the validator and the hosts made of the change."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from dagsync.cli.exits import ExitStatus
from dagsync.cli.options import Parents, checks_of, emit, publisher_of, store_of
from dagsync.cli.progress import UploadProgress
from dagsync.core.models import Release
from dagsync.core.store import S3Store
from dagsync.publish.change import ManifestChange
from dagsync.publish.publisher import promote, publish, retire
from dagsync.publish.waiter import wait_for_hosts, wait_for_release
from dagsync.publish.workflow import rollback


def register(sub: Any, common: Parents) -> None:
    aws, wait = common.aws, common.wait
    p = sub.add_parser("publish", parents=[aws, wait, common.parse],
                       help="package a DAG folder as an immutable version")
    p.add_argument("project", help="project name (a folder name on every host)")
    p.add_argument("version", help="the version to publish, e.g. a git SHA or 1.4.0")
    p.add_argument("directory", type=Path, help="the project's DAG folder")
    p.add_argument("--promote", action="store_true", help="also make this version live")
    p.add_argument("--published-by", default=None,
                   help="the user recorded in the catalog (default: the CI's actor, else the OS user); the AWS "
                        "identity, commit and CI run are recorded too")
    p.add_argument("--progress", action="store_true",
                   help="show upload progress on stderr (default: only when stderr is a terminal)")
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("promote", parents=[aws, wait], help="make a published version live (or roll back)")
    p.add_argument("project")
    p.add_argument("version")
    p.set_defaults(func=cmd_promote)

    p = sub.add_parser("retire", parents=[aws, wait], help="remove a project from every host")
    p.add_argument("project")
    p.add_argument("--allow-empty", action="store_true", help="allow retiring the last live project")
    p.set_defaults(func=cmd_retire)

    p = sub.add_parser("rollback", parents=[aws, wait], help="make the version live before the current one live again")
    p.add_argument("project")
    p.add_argument("--to", metavar="VERSION", default=None,
                   help="roll back to this published version (default: the one live before the current one)")
    p.set_defaults(func=cmd_rollback)


def cmd_publish(args: argparse.Namespace) -> int:
    checks = checks_of(args)
    store = store_of(args)
    if args.progress or sys.stderr.isatty():
        UploadProgress(f"{args.project} {args.version}").attach(store.client)
    result = publish(store, args.project, args.version, args.directory, promote_now=args.promote,
                     published_by=args.published_by, checks=checks,
                     publisher=publisher_of(args))
    checked = result.checked
    for warning in checked.warnings:
        print(f"dagsync publish: warning: {warning}", file=sys.stderr, flush=True)
    doc: dict[str, Any] = {
        "project": result.project, "version": result.version, "sha256": result.sha256, "size": result.size,
        "files": result.files, "dag_ids": result.dag_ids, "archive_created": result.archive_created,
        "catalog_appended": result.catalog_appended, "checked_with": checked.checked_with,
        "warnings": checked.warnings, "parse": checked.parse.model_dump(mode="json") if checked.parse else None,
    }
    text = (f"published {result.project} {result.version}: {result.files} files, {result.size} bytes, "
            f"sha256 {result.sha256[:12]}" + ("" if result.archive_created else " (identical; already published)")
            + f"\n{checked.checked_with_text}")
    if result.manifest is None:
        emit(args, doc, text)
        return ExitStatus.OK
    if not args.json:
        print(text, flush=True)
    return finish_change(args, store, result.manifest, doc)


def cmd_promote(args: argparse.Namespace) -> int:
    store = store_of(args)
    change = promote(store, args.project, args.version, publisher=publisher_of(args))
    return finish_change(args, store, change, {"project": args.project})


def cmd_retire(args: argparse.Namespace) -> int:
    store = store_of(args)
    change = retire(store, args.project, allow_empty=args.allow_empty, publisher=publisher_of(args))
    return finish_change(args, store, change, {"project": args.project})


def cmd_rollback(args: argparse.Namespace) -> int:
    store = store_of(args)
    live, target, change = rollback(store, args.project, args.to, publisher=publisher_of(args))
    return finish_change(args, store, change, {"project": args.project, "from": live, "to": target})


def finish_change(args: argparse.Namespace, store: S3Store, change: ManifestChange, doc: dict[str, Any]) -> int:
    doc["manifest"] = {"changed": change.changed, "previous": change.previous, "etag": change.etag}
    what = f"{change.project} -> {change.version}" if change.version else f"{change.project} retired"
    text = (f"manifest: {what} (was {change.previous or 'absent'})" if change.changed
            else f"manifest: {what} already")
    if args.wait or args.wait_hosts is not None:
        release = wait_for_release(store, change, timeout=args.timeout)
        doc["release"] = {"sequence": release.sequence, "published_at": release.published_at.isoformat()}
        text += f"\nreleased: sequence {release.sequence}"
        if args.wait_hosts is not None:
            text += "\n" + _wait_hosts(args, store, release, doc)
    emit(args, doc, text)
    return ExitStatus.OK


def _wait_hosts(args: argparse.Namespace, store: S3Store, release: Release, doc: dict[str, Any]) -> str:
    """After --wait: wait for the hosts; returns a line of text (the doc gets a "hosts" entry)."""
    statuses = wait_for_hosts(store, release.sequence, args.wait_hosts or None, timeout=args.timeout)
    doc["hosts"] = {h: {"sequence": s.sequence, "projects": s.live(release)} for h, s in sorted(statuses.items())}
    if not statuses:
        return "hosts: none have reported a status yet (nothing to wait for)"
    return f"hosts: {', '.join(sorted(statuses))} applied release {release.sequence} or later"
