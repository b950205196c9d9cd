"""Which releases this host applies: the Verifier built once at start from the settings (dagsync.core.signatures)."""

from __future__ import annotations

from dagsync.core import kms
from dagsync.core.aws import AwsSettings
from dagsync.core.releases import Verifier
from dagsync.core.signatures import TrustedKeys, short, verifier_from

from . import logs
from .config import AgentConfig
from .fetch import describe


class KeyFetchError(RuntimeError):
    """A public key the settings opted to fetch from KMS could not be read (the message says which and why)."""


def build_verifier(cfg: AgentConfig) -> Verifier:
    """Trusted keys from the PEM files and, only when `trusted_kms_keys` opts in, from KMS (whoever controls the
    account could swap that key, so pinned files are the default). TrustError: a bad file or setting;
    KeyFetchError: KMS did not answer. Says in the log what is trusted, or that nothing is checked."""
    fetched = []
    if cfg.trusted_kms_keys:
        client = AwsSettings.resolve(cfg.region, cfg.endpoint_url).client("kms")
        for key in cfg.trusted_kms_keys:
            try:
                fetched.append(kms.public_key(client, key))
            except Exception as exc:
                raise KeyFetchError(f"trusted_kms_keys: cannot read the public key of {key} from KMS: "
                                    f"{describe(exc)}") from None
    verifier = verifier_from(cfg.trusted_keys, cfg.allow_unsigned, extra_keys=fetched)
    if isinstance(verifier, TrustedKeys):
        logs.info("release signatures checked", trusted_keys=[short(k) for k in verifier.key_ids],
                  files=[str(p) for p in cfg.trusted_keys], from_kms=list(cfg.trusted_kms_keys))
    else:
        logs.warning("accepting unsigned releases: signatures are not checked (allow_unsigned)")
    return verifier
