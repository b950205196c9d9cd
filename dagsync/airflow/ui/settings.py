"""Where the pages read from: the bucket, endpoint and region the agent and DagsyncBundle use (DAGSYNC_BUCKET,
DAGSYNC_ENDPOINT_URL, AWS_REGION), and the keys the live release's signature is checked with (DAGSYNC_TRUSTED_KEYS),
from the API server's environment. Nothing a request carries decides any of it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from dagsync.core import constants
from dagsync.core.releases import Verifier
from dagsync.core.signatures import TrustError, verifier_from

# How long one read of the bucket serves every page (seconds): a busy UI does not multiply S3 requests, and a
# publish shows within this plus the validator's own delay.
DEFAULT_TTL = 3.0
ENV_TTL = "DAGSYNC_UI_CACHE_SECONDS"


class NotConfigured(RuntimeError):
    """The API server's environment does not say which bucket to show; the message says what to set."""


@dataclass(frozen=True)
class UiSettings:
    bucket: str
    endpoint_url: str | None
    region: str | None
    ttl: float = DEFAULT_TTL
    trusted_keys: str | None = None  # PEM files, comma-separated, as the agent's DAGSYNC_TRUSTED_KEYS

    def verifier(self) -> Verifier | None:
        """What the pages check the live release's signature with: the agent's pinned keys; None (not checked)
        when none are set."""
        if not self.trusted_keys:
            return None
        try:
            return verifier_from(self.trusted_keys)
        except (TrustError, OSError) as exc:
            raise NotConfigured(f"{constants.ENV_TRUSTED_KEYS}: {exc}") from None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> UiSettings:
        env = os.environ if environ is None else environ
        bucket = env.get(constants.ENV_BUCKET, "").strip()
        if not bucket:
            raise NotConfigured(f"{constants.ENV_BUCKET} is not set in the Airflow API server's environment: set it "
                                "(and DAGSYNC_ENDPOINT_URL, AWS_REGION as the agent has them) to show deploys")
        raw_ttl = env.get(ENV_TTL, str(DEFAULT_TTL))
        try:
            ttl = float(raw_ttl)
        except ValueError:
            raise NotConfigured(f"{ENV_TTL}={raw_ttl!r} is not a number of seconds") from None
        if not 0 <= ttl <= 300:
            raise NotConfigured(f"{ENV_TTL}={raw_ttl!r}: use 0-300 seconds")
        return cls(bucket=bucket, endpoint_url=env.get(constants.ENV_ENDPOINT_URL) or None,
                   region=env.get(constants.ENV_REGION) or None, ttl=ttl,
                   trusted_keys=env.get(constants.ENV_TRUSTED_KEYS) or None)
