"""dagsync-agent: keeps one host's DAG folder equal to the accepted release."""

from __future__ import annotations

from dagsync import __version__

AGENT_VERSION = __version__

__all__ = ["AGENT_VERSION"]
