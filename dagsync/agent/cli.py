"""`dagsync-agent run` (the daemon) and `dagsync-agent once` (init-container mode).

Exit codes: 0 done / stopped by SIGTERM; 1 sync failed (once), --max-failures reached (run) or a trusted key could
not be fetched from KMS; 2 bad configuration (a trusted key file included)."""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Sequence

from dagsync.core.releases import Verifier
from dagsync.core.signatures import TrustError

from . import AGENT_VERSION, logs
from .config import CONFIG_ENV, ENV_VARS, AgentConfig, ConfigError, load_config
from .loop import make_syncer, run_agent
from .metrics import Metrics
from .trust import KeyFetchError, build_verifier

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def _flag_help(name: str) -> tuple[type, str]:
    """A setting's flag type and help, from its declaration on AgentConfig (lists are comma-separated strings)."""
    field = AgentConfig.model_fields[name]
    kinds: dict[object, type] = {int: int, float: float, bool: bool}
    kind = kinds.get(field.annotation, str)
    default = "" if field.is_required() or field.default_factory or field.default in (None, (), False) else \
        f" (default {field.default})"
    return kind, f"{field.description}{default} [env {ENV_VARS[name]}]"


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help=f"YAML file of settings (env {CONFIG_ENV})")
    for name in AgentConfig.model_fields:
        kind, text = _flag_help(name)
        flag = "--" + name.replace("_", "-")
        if kind is bool:  # a switch: given means true; absent leaves the env, the file or the default to decide
            common.add_argument(flag, dest=name, action="store_const", const=True, help=text)
        else:
            common.add_argument(flag, dest=name, type=kind, help=text)
    parser = argparse.ArgumentParser(prog="dagsync-agent", description="Keep this host's DAG folder in sync.")
    parser.add_argument("--version", action="version", version=f"dagsync-agent {AGENT_VERSION}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", parents=[common], help="run the sync daemon (sidecar, systemd service)")
    once = sub.add_parser("once", parents=[common], help="sync once and exit (init container)")
    once.add_argument(
        "--project", action="append", default=None, help="sync only this project (repeatable); others untouched"
    )
    return parser


def configure(args: argparse.Namespace) -> AgentConfig:
    flags = {name: getattr(args, name) for name in AgentConfig.model_fields}
    return load_config(flags, os.environ, args.config)


def run_once(cfg: AgentConfig, projects: list[str] | None, verifier: Verifier) -> int:
    syncer = make_syncer(cfg, Metrics(), threading.Event(), write_status=False, verifier=verifier)
    only = sorted(set(projects)) if projects else None
    result = syncer.sync(full=True, only=only)
    if result.outcome == "error":
        print(f"dagsync-agent once: sync failed: {result.error}", file=sys.stderr)
        return EXIT_FAILED
    logs.info("once done", sequence=result.sequence, projects=syncer.state.versions())
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = configure(args)
    except ConfigError as exc:
        print(f"dagsync-agent: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    logs.setup(cfg.log_level)
    logs.info("starting", command=args.command, version=AGENT_VERSION, config=cfg.redacted())
    try:
        verifier = build_verifier(cfg)
    except TrustError as exc:
        logs.error("cannot start", error=str(exc))
        print(f"dagsync-agent: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyFetchError as exc:
        logs.error("cannot start", error=str(exc))
        print(f"dagsync-agent: {exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        if args.command == "once":
            return run_once(cfg, args.project, verifier)
        return run_agent(cfg, verifier)
    except OSError as exc:
        logs.error("cannot start", error=str(exc))
        print(f"dagsync-agent: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
