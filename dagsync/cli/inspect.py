"""Commands that only read: `status`, `diff`, `history`, and `validate` (offline, or against a bucket)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from dagsync.cli.exits import ExitStatus
from dagsync.cli.options import Parents, checks_of, emit, store_of
from dagsync.core import constants
from dagsync.core.documents import read_release
from dagsync.core.models import Publisher
from dagsync.core.store import S3Store
from dagsync.publish.content import AST_ONLY
from dagsync.publish.publisher import PublishError
from dagsync.publish.view import DeploymentView, diff_doc, parse_cost_doc, read_view, status_doc
from dagsync.publish.workflow import history_report, validate_path


def register(sub: Any, common: Parents) -> None:
    p = sub.add_parser("status", parents=[common.aws], help="manifest, release, rejection and hosts at a glance")
    p.add_argument("--parse-cost", action="store_true",
                   help="instead: the live projects by the parse time Airflow took at publish, costliest first")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("diff", parents=[common.aws],
                       help="manifest (intent) vs release (validated) vs hosts (applied)")
    p.add_argument("--exit-code", action="store_true",
                   help=f"exit {ExitStatus.DIFFERS.value} when anything differs")
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser("history", parents=[common.aws], help="published versions of a project and when each was live")
    p.add_argument("project")
    p.set_defaults(func=cmd_history)

    p = sub.add_parser("validate", parents=[common.parse],
                       help="check a manifest file, a DAG folder or an archive with the gate's rules")
    p.add_argument("path", type=Path, help="manifest.yaml, a DAG folder, or a .tar.gz archive")
    p.add_argument("--project", default=None,
                   help="a DAG folder's project name, for Airflow's parse (default: the folder's name)")
    # Offline unless asked: $DAGSYNC_BUCKET does not turn a local check into a bucket check.
    p.add_argument("--bucket", default=None,
                   help="also check a manifest's versions (and their dag_ids) against this bucket's catalogs")
    p.add_argument("--endpoint-url", default=os.environ.get(constants.ENV_ENDPOINT_URL))
    p.add_argument("--region", default=None)
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    p.set_defaults(func=cmd_validate)


def _hosts_lines(view: DeploymentView) -> list[str]:
    lines = []
    for h, s in view.hosts.items():
        lag = view.lag(h)
        state = "ok" if lag == 0 and not s.last_error else (f"error: {s.last_error}" if s.last_error
                                                            else f"lagging by {lag}")
        lines.append(f"host {h:<20} sequence {s.sequence:<6} {state} (seen {s.updated_at:%H:%M:%S}Z)")
    return lines + [f"host {h:<20} {why}" for h, why in view.unreadable.items()]


def cmd_parse_cost(args: argparse.Namespace) -> int:
    release, _ = read_release(store_of(args))
    doc = parse_cost_doc(release)
    interval = doc["parse_interval_seconds"]
    lines = [f"live projects by parse cost (release {doc['release_sequence']}; Airflow parses every file again about "
             f"every {interval:g} s):"]
    for p in doc["projects"]:
        cost = (f"{p['parse_seconds']:8.2f} s  {p['core_share']:6.1%} of a core" if p["parse_seconds"] is not None
                else f"{'-':>8}    (not measured: published without Airflow)")
        lines.append(f"  {p['project']:<24} {p['version']:<16} {cost}  {p['dag_ids']} dag_ids")
    lines.append(f"total: {doc['total_seconds']:.2f} s per parse cycle, {doc['core_share']:.1%} of a core on every "
                 f"DAG processor ({doc['measured']} of {len(doc['projects'])} projects measured)")
    emit(args, doc, "\n".join(lines))
    return ExitStatus.OK


def cmd_status(args: argparse.Namespace) -> int:
    if args.parse_cost:
        return cmd_parse_cost(args)
    view = read_view(store_of(args))
    release = view.release
    when = f" ({release.published_at:%Y-%m-%d %H:%M:%S}Z)" if release else ""
    lines = [f"release: sequence {view.sequence}{when}"]
    for r in view.rows():
        if r.manifest is not None or r.release is not None:
            lines.append(f"  {r.project:<24} manifest {r.manifest or '-':<16} released {r.release or '-'}")
    if view.rejection:
        lines.append(f"REJECTED manifest ({view.rejection.at:%H:%M:%S}Z): {view.rejection.reason}")
    emit(args, status_doc(view), "\n".join(lines + _hosts_lines(view)))
    return ExitStatus.OK


def cmd_diff(args: argparse.Namespace) -> int:
    view = read_view(store_of(args))
    hosts = list(view.hosts)
    lines = [f"release {view.sequence}; " + ("in sync" if view.in_sync else "NOT in sync")]
    lines.append(f"  {'project':<24} {'manifest':<16} {'release':<16} " + " ".join(f"{h:<16}" for h in hosts))
    for r in view.rows():
        flag = " <- pending" if r.pending else (" <- hosts differ" if r.hosts_differ else "")
        cells = " ".join(f"{r.hosts[h] or '-':<16}" for h in hosts)
        lines.append(f"  {r.project:<24} {r.manifest or '-':<16} {r.release or '-':<16} {cells}{flag}")
    if view.rejection:
        lines.append(f"REJECTED manifest: {view.rejection.reason}")
    lines += [f"host {h} is at release {seq}" for h, seq in sorted(view.lagging.items())]
    lines += [f"host {h}: {why}" for h, why in view.unreadable.items()]
    emit(args, diff_doc(view), "\n".join(lines))
    return ExitStatus.DIFFERS if args.exit_code and not view.in_sync else ExitStatus.OK


def cmd_history(args: argparse.Namespace) -> int:
    report = history_report(store_of(args), args.project)
    lines = [f"{report['project']}: live {report['live'] or '-'}, manifest {report['manifest'] or '-'}"]
    for e in report["published"]:
        mark = "*" if e["live"] else " "
        seqs = ",".join(str(s) for s in e["live_in_releases"]) or "-"
        parse = f"parse {e['parse_seconds']:.2f} s" if e["parse_seconds"] is not None else "parse -"
        lines.append(f" {mark} {e['version']:<20} {e['published_at'][:19]}Z  by {e['published_by'] or '?':<16} "
                     f"sha256 {e['sha256'][:12]}  {e['files']} files  {parse:<14} live in releases: {seqs}")
        if e["publisher"]:
            lines.append(f"   {'':<20} published by {Publisher.model_validate(e['publisher']).describe()}")
    emit(args, report, "\n".join(lines))
    return ExitStatus.OK


def cmd_validate(args: argparse.Namespace) -> int:
    if not args.path.exists():
        raise PublishError(f"{args.path} does not exist")
    store: S3Store | None = store_of(args) if args.bucket else None
    checks = checks_of(args) if args.path.is_dir() else AST_ONLY
    result = validate_path(args.path, store, checks, args.project)
    if result.ok:
        extra = f", dag_ids: {', '.join(result.details.get('dag_ids', [])) or '-'}" if result.kind != "manifest" else ""
        text = f"{args.path}: valid {result.kind}{extra}"
        if result.kind == "dags":
            text += f"\n{result.details['checked_with_text']}" + "".join(
                f"\n  warning: {w}" for w in result.details["warnings"])
    else:
        how = {"airflow": " (parsed by Airflow's DagBag)", "ast": " (checked with ast only)"}.get(
            result.details.get("checked_with", {}).get("parser", ""), "")
        text = f"{args.path}: INVALID {result.kind}{how}\n" + "\n".join(f"  - {e}" for e in result.errors)
    emit(args, result.as_dict(), text)
    return ExitStatus.OK if result.ok else ExitStatus.REJECTED
