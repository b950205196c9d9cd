"""JSON logs: one line per record, a fixed message plus key/values."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

LOGGER = logging.getLogger("dagsync.agent")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
        }
        out.update(getattr(record, "kv", {}))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    LOGGER.handlers[:] = [handler]
    LOGGER.setLevel(level.upper())
    LOGGER.propagate = False


def _log(level: int, msg: str, kv: dict[str, Any]) -> None:
    LOGGER.log(level, msg, extra={"kv": kv})


def debug(msg: str, **kv: Any) -> None:
    _log(logging.DEBUG, msg, kv)


def info(msg: str, **kv: Any) -> None:
    _log(logging.INFO, msg, kv)


def warning(msg: str, **kv: Any) -> None:
    _log(logging.WARNING, msg, kv)


def error(msg: str, **kv: Any) -> None:
    _log(logging.ERROR, msg, kv)
