"""`dagsync-agent run` (the daemon) and `dagsync-agent once` (init-container mode).

Exit codes: 0 done / stopped by SIGTERM; 1 sync failed (once) or --max-failures reached (run);
2 bad configuration."""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Sequence

from . import AGENT_VERSION, logs
from .config import CONFIG_ENV, DEFAULT_LISTEN, ENV_VARS, AgentConfig, ConfigError, load_config
from .loop import make_syncer, run_agent
from .metrics import Metrics

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2

# flag -> (type, help). Every flag's default comes from ENV_VARS, then the config file.
FLAGS: dict[str, tuple[type, str]] = {
    "dags_dir": (str, "the Airflow DAG folder this agent owns"),
    "bucket": (str, "artifact bucket holding release.json"),
    "endpoint_url": (str, "S3/SQS endpoint (the local moto server); unset for AWS"),
    "region": (str, "AWS region"),
    "queue_url": (str, "this host's SQS queue URL (run only; without it the timer alone syncs)"),
    "host": (str, "host name for hosts/<host>.json (default: this machine's name)"),
    "reconcile_interval": (float, "seconds between full reconciles (default 60)"),
    "listen": (str, f"health/metrics address HOST:PORT, 0 disables (default {DEFAULT_LISTEN})"),
    "keep_versions": (int, "store trees kept per project, the live one included (default 2)"),
    "retention_grace": (float, "seconds a retired tree is kept before deletion (default 3600)"),
    "digest_every": (int, "full sha256 check of the store every N full reconciles (default 10)"),
    "max_failures": (int, "exit 1 after N consecutive failed syncs (default 0: never)"),
    "poll_wait": (int, "SQS long-poll seconds, 0-20 (default 20)"),
    "backoff_max": (float, "longest back-off after failures, seconds (default 60)"),
    "log_level": (str, "debug, info, warning or error (default info)"),
}


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help=f"YAML file of settings (env {CONFIG_ENV})")
    for name, (kind, text) in FLAGS.items():
        env = ENV_VARS[name]
        common.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, help=f"{text} [env {env}]")
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
    flags = {name: getattr(args, name) for name in FLAGS}
    return load_config(flags, os.environ, args.config)


def run_once(cfg: AgentConfig, projects: list[str] | None) -> int:
    syncer = make_syncer(cfg, Metrics(), threading.Event(), write_status=False)
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
        if args.command == "once":
            return run_once(cfg, args.project)
        return run_agent(cfg)
    except OSError as exc:
        logs.error("cannot start", error=str(exc))
        print(f"dagsync-agent: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
