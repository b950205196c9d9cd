"""The agent's configuration: one validated model, built from flags > DAGSYNC_* env > YAML file > defaults.

A bad value is fatal at start (exit 2) and the message names the setting and where it came from."""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse, urlunparse

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dagsync.core import constants
from dagsync.core.models import HOST_RE, HostName

DEFAULT_LISTEN = "127.0.0.1:9465"
DEFAULT_RETENTION_GRACE_S = 3600.0
DEFAULT_DIGEST_EVERY = 10
CONFIG_ENV = "DAGSYNC_CONFIG"

# Setting -> environment variable. Flags are the same names with dashes: --dags-dir, --keep-versions ...
ENV_VARS: dict[str, str] = {
    "dags_dir": constants.ENV_DAGS_DIR,
    "bucket": constants.ENV_BUCKET,
    "endpoint_url": constants.ENV_ENDPOINT_URL,
    "region": constants.ENV_REGION,
    "queue_url": constants.ENV_QUEUE_URL,
    "host": constants.ENV_HOST,
    "reconcile_interval": constants.ENV_RECONCILE_INTERVAL,
    "listen": "DAGSYNC_LISTEN",
    "keep_versions": "DAGSYNC_KEEP_VERSIONS",
    "retention_grace": "DAGSYNC_RETENTION_GRACE",
    "digest_every": "DAGSYNC_DIGEST_EVERY",
    "max_failures": "DAGSYNC_MAX_FAILURES",
    "poll_wait": "DAGSYNC_POLL_WAIT",
    "backoff_max": "DAGSYNC_BACKOFF_MAX",
    "log_level": "DAGSYNC_LOG_LEVEL",
}

BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class ConfigError(ValueError):
    """The configuration is unusable; the message names the setting."""


def default_host() -> str:
    """The machine's name squeezed into the HostName rule (lowercase, a-z 0-9 -)."""
    name = re.sub(r"[^a-z0-9-]+", "-", socket.gethostname().split(".")[0].lower()).strip("-")[:63]
    return name if HOST_RE.fullmatch(name) else "host"


def _check_url(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"{what} must be an http(s) URL, got {value!r}")
    return value


def parse_listen(value: str) -> tuple[str, int] | None:
    if value.strip() in ("0", "", "off"):
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"listen must be HOST:PORT (port 1-65535) or 0 to disable, got {value!r}")
    return (host.strip("[]") or "0.0.0.0", int(port))  # noqa: S104 - an empty host means all addresses


class AgentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    dags_dir: Path
    bucket: str
    endpoint_url: str | None = None
    region: str | None = None
    queue_url: str | None = None
    host: HostName = Field(default_factory=default_host)
    reconcile_interval: float = Field(default=constants.DEFAULT_RECONCILE_INTERVAL_S, gt=0, le=86400)
    listen: str = DEFAULT_LISTEN
    keep_versions: int = Field(default=constants.DEFAULT_KEEP_VERSIONS, ge=1)
    retention_grace: float = Field(default=DEFAULT_RETENTION_GRACE_S, ge=0)
    digest_every: int = Field(default=DEFAULT_DIGEST_EVERY, ge=1)
    max_failures: int = Field(default=0, ge=0)
    poll_wait: int = Field(default=constants.DEFAULT_POLL_WAIT_S, ge=0, le=20)
    backoff_max: float = Field(default=60.0, gt=0)
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("dags_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, value: str) -> str:
        if not BUCKET_RE.fullmatch(value):
            raise ValueError(f"{value!r} is not an S3 bucket name")
        return value

    @field_validator("endpoint_url", "queue_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return _check_url(value or None, "the value")

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_listen(value)
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @property
    def listen_address(self) -> tuple[str, int] | None:
        return parse_listen(self.listen)

    def redacted(self) -> dict[str, Any]:
        """The effective configuration for the start-up log: credentials in URLs are masked."""
        out = self.model_dump(mode="json")
        for key in ("endpoint_url", "queue_url"):
            if out.get(key):
                out[key] = _redact_url(out[key])
        return out


def _redact_url(url: str) -> str:
    parsed = urlparse(url)
    if parsed.username or parsed.password:
        netloc = "***@" + (parsed.hostname or "") + (f":{parsed.port}" if parsed.port else "")
        parsed = parsed._replace(netloc=netloc)
    if parsed.query:
        parsed = parsed._replace(query="***")
    return urlunparse(parsed)


def _read_file(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must be a mapping of settings")
    return {str(k).replace("-", "_"): v for k, v in raw.items()}


def load_config(
    flags: Mapping[str, Any], environ: Mapping[str, str], config_file: Path | str | None = None
) -> AgentConfig:
    """Merge the sources (flags > env > file > defaults) and validate once."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    path = config_file or environ.get(CONFIG_ENV) or None
    if path:
        for key, value in _read_file(Path(path)).items():
            values[key], sources[key] = value, f"config file {path}"
    for key, var in ENV_VARS.items():
        if environ.get(var, "") != "":
            values[key], sources[key] = environ[var], f"env {var}"
    for key, value in flags.items():
        if value is not None:
            values[key], sources[key] = value, f"flag --{key.replace('_', '-')}"
    try:
        return AgentConfig.model_validate(values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]) or "(config)"
            where = sources.get(name, "missing; set the flag or " + ENV_VARS.get(name, "config file key"))
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"{name} ({where}): {msg}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None
