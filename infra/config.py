"""Typed per-environment settings. `app.py` reads the CDK context and hands the raw mapping to
`parse_environments`; constructs only ever see these dataclasses."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dagsync.core import constants
from dagsync.core.models import HOST_RE

CONTEXT_KEY = "dagsync:environments"
ENV_NAME_RE = HOST_RE  # environment names become part of physical names: same rule as hosts
DEFAULT_DAGS_DIR = "/opt/airflow/dags"
DEFAULT_RETENTION_DAYS = 30
# How long every accepted release root stays at releases/<sequence>.json: a DAG run older than this can no longer be
# cleared and re-run on the code it started with (docs/infrastructure.md, "Release history").
DEFAULT_RELEASE_HISTORY_DAYS = 400
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
    release_history_days: int = DEFAULT_RELEASE_HISTORY_DAYS
    alarm_email: str | None = None
    dags_dir: str = DEFAULT_DAGS_DIR
    retain_data: bool = True
    # Release signing keys by name; the validator signs with `signing_key` (default: the first). A rotation adds the
    # next name, then switches `signing_key` to it once every host trusts it, then drops the old name.
    signing_keys: tuple[str, ...] = (constants.DEFAULT_SIGNING_KEY,)
    signing_key: str = constants.DEFAULT_SIGNING_KEY

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


_KNOWN_KEYS = {"account", "region", "hosts", "reconcile_interval_s", "retention_days", "release_history_days",
               "alarm_email", "dags_dir", "retain_data", "signing_keys", "signing_key"}
KEY_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,19}$")


def parse_signing_keys(name: str, raw: Mapping[str, Any]) -> tuple[tuple[str, ...], str]:
    keys = raw.get("signing_keys", [constants.DEFAULT_SIGNING_KEY])
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) and KEY_NAME_RE.fullmatch(k)
                                                          for k in keys):
        raise ConfigError(f"environment {name!r}: signing_keys must be a non-empty list of names of 1-20 of "
                          f"a-z 0-9 - (got {keys!r})")
    if len(set(keys)) != len(keys):
        raise ConfigError(f"environment {name!r}: signing_keys lists a name more than once: {keys}")
    active = raw.get("signing_key", keys[0])
    if active not in keys:
        raise ConfigError(f"environment {name!r}: signing_key {active!r} is not one of signing_keys {keys}")
    return tuple(keys), str(active)


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
    history = raw.get("release_history_days", DEFAULT_RELEASE_HISTORY_DAYS)
    if not isinstance(history, int) or isinstance(history, bool) or history < 1:
        raise ConfigError(f"environment {name!r}: release_history_days must be a whole number of days, at least 1")
    interval = float(raw.get("reconcile_interval_s", constants.DEFAULT_RECONCILE_INTERVAL_S))
    if interval <= 0:
        raise ConfigError(f"environment {name!r}: reconcile_interval_s must be positive")
    signing_keys, signing_key = parse_signing_keys(name, raw)
    return EnvironmentConfig(
        name=name,
        hosts=expand_hosts(raw.get("hosts", [])),
        account=_optional_str(raw.get("account")),
        region=_optional_str(raw.get("region")),
        reconcile_interval_s=interval,
        retention_days=retention,
        release_history_days=history,
        alarm_email=_optional_str(raw.get("alarm_email")),
        dags_dir=str(raw.get("dags_dir", DEFAULT_DAGS_DIR)),
        retain_data=bool(raw.get("retain_data", True)),
        signing_keys=signing_keys,
        signing_key=signing_key,
    )


def parse_environments(raw: Mapping[str, Any] | None) -> tuple[EnvironmentConfig, ...]:
    if not raw:
        raise ConfigError(f"no environments: set the context key {CONTEXT_KEY!r} in cdk.json")
    return tuple(parse_environment(name, body or {}) for name, body in raw.items())


def _optional_str(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None
