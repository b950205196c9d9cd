"""`dagsync local up`: the embedded default, in the foreground until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from dagsync.cli.exits import ExitStatus
from dagsync.cli.options import Parents
from dagsync.core import constants


def register(sub: Any, common: Parents) -> None:
    local = sub.add_parser("local", help="the embedded default: everything on this machine, no AWS account")
    local_sub = local.add_subparsers(dest="local_command", required=True, metavar="COMMAND")
    p = local_sub.add_parser("up", help="start a moto server on 127.0.0.1, provision it, run the validator")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free port)")
    p.add_argument("--hosts", type=int, default=2, help="number of host queues, named host-1..host-N (default: 2)")
    p.add_argument("--schedule-interval", type=float, default=60.0,
                   help="seconds between scheduled validator runs (default: 60, as in AWS)")
    p.add_argument("--trusted-keys-file", type=Path, default=None, metavar="PATH",
                   help="where to write the public key of the stack's release signing key (PEM), for agents' "
                        "--trusted-keys (default: release-signing.pem in a new temporary folder, removed on exit)")
    p.add_argument("--json", action="store_true", help="print one JSON line with the endpoints once ready")
    p.set_defaults(func=cmd_local_up)


def cmd_local_up(args: argparse.Namespace) -> int:
    if args.hosts < 0 or not 0 <= args.port <= 65535 or args.schedule_interval <= 0:
        print("dagsync local up: --hosts >= 0, --port 0..65535 and --schedule-interval > 0", file=sys.stderr)
        return ExitStatus.USAGE
    try:  # the [local] extra: moto and Powertools
        from dagsync.local.stack import LocalStack, default_hosts
    except ImportError as exc:
        print(f"dagsync local up needs the local extra (pip install \"dagsync[local]\"): {exc}", file=sys.stderr)
        return ExitStatus.FAILED
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    scratch: Path | None = None  # ours to remove: only what this command made itself
    if args.trusted_keys_file is None:
        scratch = Path(tempfile.mkdtemp(prefix="dagsync-local-"))
        keys_file = scratch / "release-signing.pem"
    else:
        keys_file = args.trusted_keys_file.expanduser().absolute()
    stack = LocalStack(port=args.port, hosts=default_hosts(args.hosts), schedule_interval=args.schedule_interval,
                       trusted_keys_file=keys_file)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        info = stack.start()
        if args.json:
            print(json.dumps(info), flush=True)
        else:
            print(f"dagsync local stack ready at {info['endpoint_url']}\n"
                  f"  export {constants.ENV_ENDPOINT_URL}={info['endpoint_url']} "
                  f"{constants.ENV_BUCKET}={info['bucket']}\n"
                  f"  releases are signed; agents trust them with --trusted-keys {info['trusted_keys_file']}\n"
                  + "".join(f"  host {h}: {u}\n" for h, u in info["host_queues"].items())
                  + "Ctrl-C to stop.", flush=True)
        # Bounded waits: a signal the kernel hands to one of moto's threads only runs its handler once the
        # main thread runs bytecode again.
        while not stop.wait(0.5):
            pass
    finally:
        stack.stop()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return ExitStatus.OK
