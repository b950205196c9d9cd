"""The agent's configuration: one pydantic-settings model, built from flags > DAGSYNC_* env > YAML file > defaults.

Every setting is declared once, on `AgentConfig`: its type, default, help text and environment variable
(`DAGSYNC_<NAME>`, except the region, which is AWS's own `AWS_REGION`). The flags of `dagsync-agent`, the
environment names the deployment examples use and the table in docs/agent.md all come from it (tests hold the
last two to it). A bad value is fatal at start (exit 2) and the message names the setting and where it came from."""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlparse, urlunparse

import yaml
from pydantic import AliasChoices, AliasGenerator, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, SettingsConfigDict, YamlConfigSettingsSource
from pydantic_settings.sources.utils import parse_env_vars

from dagsync.core import constants
from dagsync.core.models import HOST_RE, HostName

ENV_PREFIX = "DAGSYNC_"
CONFIG_ENV = "DAGSYNC_CONFIG"
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


class AgentConfig(BaseSettings):
    # Each setting answers to its own name (flags, the config file) and to its environment variable, exactly.
    model_config = SettingsConfigDict(
        alias_generator=AliasGenerator(validation_alias=lambda name: AliasChoices(name, ENV_PREFIX + name.upper())),
        case_sensitive=True, env_ignore_empty=True, extra="forbid", frozen=True,
    )

    dags_dir: Path = Field(description="the Airflow DAG folder this agent owns")
    bucket: str = Field(description="artifact bucket holding release.json")
    endpoint_url: str | None = Field(None, description="S3/SQS endpoint (the local moto server); unset for AWS")
    region: str | None = Field(None, validation_alias=AliasChoices("region", constants.ENV_REGION),
                               description="AWS region")
    queue_url: str | None = Field(None, description="this host's SQS queue URL (run only; without it the timer "
                                                    "alone syncs)")
    host: HostName = Field(default_factory=default_host,
                           description="host name for hosts/<host>.json (default: this machine's name)")
    reconcile_interval: float = Field(constants.DEFAULT_RECONCILE_INTERVAL_S, gt=0, le=86400,
                                      description="seconds between full reconciles")
    listen: str = Field("127.0.0.1:9465", description="health/metrics address HOST:PORT, 0 disables")
    keep_versions: int = Field(2, ge=1,
                               description="store trees kept per project, the live one included")
    keep_views: int = Field(100, ge=0,
                            description="release views kept besides the current one, for the DagsyncBundle's tasks "
                                        "of older runs (each a folder of one link per project)")
    retention_grace: float = Field(3600.0, ge=0, description="seconds a retired tree is kept before deletion")
    digest_every: int = Field(10, ge=1, description="full sha256 check of the store every N full reconciles")
    max_failures: int = Field(0, ge=0, description="exit 1 after N consecutive failed syncs (0: never)")
    poll_wait: int = Field(20, ge=0, le=20, description="SQS long-poll seconds, 0-20")
    backoff_max: float = Field(60.0, gt=0, description="longest back-off after failures, seconds")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="debug, info, warning or "
                                                                                        "error")
    # Release signatures: a list is one comma-separated string in the environment and on the command line.
    trusted_keys: Annotated[tuple[Path, ...], NoDecode] = Field(
        (), description="PEM files of the public keys whose signed releases this host applies, comma-separated")
    trusted_kms_keys: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="opt-in: also trust these KMS keys (ids or ARNs), their public keys fetched at start-up, "
                        "comma-separated")
    allow_unsigned: bool = Field(False, description="apply releases without checking signatures (only without "
                                                    "trusted keys; logged at start)")

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

    @field_validator("trusted_keys", "trusted_kms_keys", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("trusted_keys")
    @classmethod
    def _absolute_keys(cls, value: tuple[Path, ...]) -> tuple[Path, ...]:
        return tuple(p.expanduser().absolute() for p in value)

    @model_validator(mode="after")
    def _trust_is_explicit(self) -> AgentConfig:
        trusted = bool(self.trusted_keys or self.trusted_kms_keys)
        if trusted and self.allow_unsigned:
            raise ValueError("allow_unsigned and trusted keys are both set: choose one (with trusted keys, "
                             "unsigned releases are refused)")
        if not trusted and not self.allow_unsigned:
            raise ValueError(
                f"no trusted release signing keys: set --trusted-keys ({ENV_PREFIX}TRUSTED_KEYS, PEM files of the "
                f"validator's public key) or, to apply releases whose signature nobody checks, --allow-unsigned "
                f"({ENV_PREFIX}ALLOW_UNSIGNED=true)")
        return self

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


def env_name(setting: str) -> str:
    """The environment variable of a setting, as the env source reads it."""
    alias = AgentConfig.model_fields[setting].validation_alias
    assert isinstance(alias, AliasChoices)
    return str(alias.choices[-1])


ENV_VARS: dict[str, str] = {name: env_name(name) for name in AgentConfig.model_fields}
DEFAULT_LISTEN: str = AgentConfig.model_fields["listen"].default


def _redact_url(url: str) -> str:
    parsed = urlparse(url)
    if parsed.username or parsed.password:
        netloc = "***@" + (parsed.hostname or "") + (f":{parsed.port}" if parsed.port else "")
        parsed = parsed._replace(netloc=netloc)
    if parsed.query:
        parsed = parsed._replace(query="***")
    return urlunparse(parsed)


class _Environment(EnvSettingsSource):
    """pydantic-settings' env source over a given mapping (the process environment in production)."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(AgentConfig)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


def _read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {path}: no such file")
    try:
        data = YamlConfigSettingsSource(AgentConfig, yaml_file=path).yaml_data
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    except (AttributeError, TypeError):  # a list or a scalar at the top
        raise ConfigError(f"config file {path} must be a mapping of settings") from None
    return {str(k).replace("-", "_"): v for k, v in data.items()}


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
    for key, value in _Environment(environ)().items():
        values[key], sources[key] = value, f"env {ENV_VARS[key]}"
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
            problems.append(f"{name} ({where}): {msg}" if err["loc"] else msg)
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None
