"""Typed per-environment settings. `app.py` reads the CDK context and hands the raw mapping to
`parse_environments`; constructs only ever see these dataclasses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dagsync.core import constants
from dagsync.core.models import HOST_RE

CONTEXT_KEY = "dagsync:environments"
ENV_NAME_RE = HOST_RE  # environment names become part of physical names: same rule as hosts
DEFAULT_DAGS_DIR = "/opt/airflow/dags"
DEFAULT_RETENTION_DAYS = 30
# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = frozenset(
    (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)
)


class ConfigError(ValueError):
    """The context in cdk.json is not a valid dagsync configuration."""


@dataclass(frozen=True)
class EnvironmentConfig:
    name: str
    hosts: tuple[str, ...]
    account: str | None = None
    region: str | None = None
    reconcile_interval_s: float = constants.DEFAULT_RECONCILE_INTERVAL_S
    retention_days: int = DEFAULT_RETENTION_DAYS
    alarm_email: str | None = None
    dags_dir: str = DEFAULT_DAGS_DIR
    retain_data: bool = True

    @property
    def prefix(self) -> str:
        """Physical-name prefix for every resource of this environment."""
        return f"{constants.LOCAL_PREFIX}-{self.name}"

    @property
    def stack_name(self) -> str:
        return f"DagSync-{self.name}"


def expand_hosts(entries: Sequence[Any]) -> tuple[str, ...]:
    """Host entries are names ("scheduler") or groups ({"group": "worker", "count": 3} -> worker-1..3)."""
    hosts: list[str] = []
    for entry in entries:
        if isinstance(entry, str):
            hosts.append(entry)
        elif isinstance(entry, Mapping) and set(entry) == {"group", "count"}:
            count = entry["count"]
            if not isinstance(count, int) or isinstance(count, bool) or count < 1:
                raise ConfigError(f"host group {entry['group']!r}: count must be a positive integer")
            hosts.extend(f"{entry['group']}-{i}" for i in range(1, count + 1))
        else:
            raise ConfigError(f"host entry {entry!r}: use a name or {{'group': NAME, 'count': N}}")
    for host in hosts:
        if not HOST_RE.fullmatch(host):
            raise ConfigError(f"host name {host!r}: use 1-63 of a-z 0-9 -, starting with a letter or digit")
    duplicates = sorted({h for h in hosts if hosts.count(h) > 1})
    if duplicates:
        raise ConfigError(f"hosts listed more than once: {', '.join(duplicates)}")
    squashed = [h.replace("-", "") for h in hosts]
    clashes = sorted({h for h in hosts if squashed.count(h.replace("-", "")) > 1})
    if clashes:
        # CloudFormation output ids drop the dashes: "worker-1" and "worker1" would share one.
        raise ConfigError(f"host names differ only in dashes: {', '.join(clashes)}")
    return tuple(hosts)


_KNOWN_KEYS = {"account", "region", "hosts", "reconcile_interval_s", "retention_days", "alarm_email", "dags_dir",
               "retain_data"}


def parse_environment(name: str, raw: Mapping[str, Any]) -> EnvironmentConfig:
    if not ENV_NAME_RE.fullmatch(name):
        raise ConfigError(f"environment name {name!r}: use 1-63 of a-z 0-9 -")
    unknown = set(raw) - _KNOWN_KEYS
    if unknown:
        raise ConfigError(f"environment {name!r}: unknown keys {sorted(unknown)}; known: {sorted(_KNOWN_KEYS)}")
    retention = int(raw.get("retention_days", DEFAULT_RETENTION_DAYS))
    if retention not in LOG_RETENTION_DAYS:
        raise ConfigError(f"environment {name!r}: retention_days {retention} is not one of "
                          f"{sorted(LOG_RETENTION_DAYS)}")
    interval = float(raw.get("reconcile_interval_s", constants.DEFAULT_RECONCILE_INTERVAL_S))
    if interval <= 0:
        raise ConfigError(f"environment {name!r}: reconcile_interval_s must be positive")
    return EnvironmentConfig(
        name=name,
        hosts=expand_hosts(raw.get("hosts", [])),
        account=_optional_str(raw.get("account")),
        region=_optional_str(raw.get("region")),
        reconcile_interval_s=interval,
        retention_days=retention,
        alarm_email=_optional_str(raw.get("alarm_email")),
        dags_dir=str(raw.get("dags_dir", DEFAULT_DAGS_DIR)),
        retain_data=bool(raw.get("retain_data", True)),
    )


def parse_environments(raw: Mapping[str, Any] | None) -> tuple[EnvironmentConfig, ...]:
    if not raw:
        raise ConfigError(f"no environments: set the context key {CONTEXT_KEY!r} in cdk.json")
    return tuple(parse_environment(name, body or {}) for name, body in raw.items())


def _optional_str(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None
