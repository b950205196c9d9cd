"""Who is publishing: the caller's AWS identity when known, CI metadata when there is a CI, else the OS user.

Recorded in every catalog entry (`publisher`) and in the manifest on every write (`written_by`), from which the
validator copies it into the release it builds (`manifest.written_by`): `dagsync history` shows it."""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping

from dagsync.core.models import Publisher

# The CI's actor, in order of preference; DAGSYNC_PUBLISHED_BY (or --published-by) first.
USER_VARS = ("DAGSYNC_PUBLISHED_BY", "GITHUB_ACTOR", "GITLAB_USER_LOGIN", "BUILD_USER")
COMMIT_VARS = ("GITHUB_SHA", "CI_COMMIT_SHA", "GIT_COMMIT")


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def run_url(env: Mapping[str, str]) -> str:
    """The CI run: GitHub Actions (server/repository/actions/runs/id), else GitLab's job, else Jenkins' build."""
    if env.get("GITHUB_REPOSITORY") and env.get("GITHUB_RUN_ID"):
        server = env.get("GITHUB_SERVER_URL") or "https://github.com"
        return f"{server}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}"
    return env.get("CI_JOB_URL") or env.get("BUILD_URL") or ""


def current(identity: str | None = None, *, user: str | None = None,
            environ: Mapping[str, str] | None = None) -> Publisher:
    """This process as a publisher. `identity`: the caller's STS ARN (dagsync.core.aws.caller_identity), when on AWS;
    `user`: an explicit name (--published-by), else the CI's actor, else the OS user."""
    env = os.environ if environ is None else environ
    name = user or next((env[v] for v in USER_VARS if env.get(v)), "") or os_user()
    commit = next((env[v] for v in COMMIT_VARS if env.get(v)), "")
    return Publisher(identity=identity or "", user=name, commit=commit, run_url=run_url(env))
