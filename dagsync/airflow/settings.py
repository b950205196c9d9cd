"""The bundle's settings: `dags_dir` from its kwargs; the bucket, endpoint and region from its kwargs or, like the
agent's, from DAGSYNC_BUCKET, DAGSYNC_ENDPOINT_URL and AWS_REGION (or DAGSYNC_CONFIG's file). Read through the agent's
own configuration model, so every name, default and check is the agent's; only when a worker must read a release
from the bucket (the DAG processor never does)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dagsync.agent.config import AgentConfig, ConfigError, load_config
from dagsync.agent.trust import build_verifier
from dagsync.core.aws import AwsSettings
from dagsync.core.store import S3Store

from .materialize import Remote

# The bundle's own refresh interval (seconds): refresh() and get_current_version() read two links on local disk, so
# asking every DAG-processor tick costs next to nothing. Airflow's default (300 s) is what made new projects wait.
DEFAULT_REFRESH_INTERVAL = 1
DEFAULT_LOCK_TIMEOUT = 300.0
DEFAULT_RESCHEDULE_SECONDS = 30


@dataclass(frozen=True)
class BundleSettings:
    dags_dir: Path
    bucket: str | None = None
    endpoint_url: str | None = None
    region: str | None = None
    trusted_keys: str | None = None  # PEM files, comma-separated; default: the agent's DAGSYNC_TRUSTED_KEYS
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    reschedule_seconds: int = DEFAULT_RESCHEDULE_SECONDS
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ), repr=False)

    def __post_init__(self) -> None:
        if not self.dags_dir.is_absolute():
            raise ValueError(f"DagsyncBundle: dags_dir must be an absolute path (the agent's DAG folder), got "
                             f"{str(self.dags_dir)!r}")
        if self.lock_timeout < 0 or self.reschedule_seconds < 1:
            raise ValueError("DagsyncBundle: lock_timeout must be >= 0 and reschedule_seconds >= 1")

    def agent_config(self) -> AgentConfig:
        """The agent's configuration model over these kwargs (as its flags) and the environment; ConfigError names
        what is missing or wrong."""
        flags = {"dags_dir": self.dags_dir, "bucket": self.bucket, "endpoint_url": self.endpoint_url,
                 "region": self.region, "trusted_keys": self.trusted_keys}
        try:
            return load_config(flags, self.environ)
        except ConfigError as exc:
            raise ConfigError(str(exc).replace("the flag", "the bundle kwarg").replace("flag --", "kwarg ")) from None

    def remote(self) -> Remote:
        cfg = self.agent_config()
        client = AwsSettings.resolve(cfg.region, cfg.endpoint_url).client("s3")
        return Remote(store=S3Store(client, cfg.bucket), verifier=build_verifier(cfg))  # the agent's own trust
