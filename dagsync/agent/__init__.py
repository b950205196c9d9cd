"""dagsync-agent: keeps one host's DAG folder equal to the accepted release."""

from __future__ import annotations

import sys

from dagsync import __version__

AGENT_VERSION = __version__

__all__ = ["AGENT_VERSION", "main"]


def main() -> int:
    """The `dagsync-agent` console script: says which extra is missing instead of a traceback."""
    try:
        from .cli import main as agent_main
    except ModuleNotFoundError as exc:
        print(f"dagsync-agent: {exc.name} is not installed; install the agent extra: pip install \"dagsync[agent]\"",
              file=sys.stderr)
        return 2
    return agent_main()
