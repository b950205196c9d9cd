"""Who published: the CI's actor, commit and run when there is a CI, else the OS user; the AWS identity when given."""

from __future__ import annotations

from dagsync.core.models import Publisher
from dagsync.publish.provenance import current, os_user

GITHUB = {"GITHUB_ACTOR": "octocat", "GITHUB_SHA": "0123456789abcdef0123", "GITHUB_REPOSITORY": "acme/dags",
          "GITHUB_RUN_ID": "42", "GITHUB_SERVER_URL": "https://github.example.com"}


def test_github_actions_metadata_and_the_aws_identity_are_recorded() -> None:
    who = current("arn:aws:sts::123456789012:assumed-role/ci/run-42", environ=GITHUB)
    assert who == Publisher(identity="arn:aws:sts::123456789012:assumed-role/ci/run-42", user="octocat",
                            commit="0123456789abcdef0123",
                            run_url="https://github.example.com/acme/dags/actions/runs/42")
    assert who.describe() == ("octocat (commit 0123456789ab, https://github.example.com/acme/dags/actions/runs/42) "
                              "as arn:aws:sts::123456789012:assumed-role/ci/run-42")


def test_gitlab_metadata_is_recorded_too() -> None:
    who = current(environ={"GITLAB_USER_LOGIN": "ana", "CI_COMMIT_SHA": "abc", "CI_JOB_URL": "https://gl/j/1"})
    assert (who.user, who.commit, who.run_url, who.identity) == ("ana", "abc", "https://gl/j/1", "")


def test_without_a_ci_the_os_user_and_an_explicit_name_wins() -> None:
    assert current(environ={}) == Publisher(user=os_user())
    assert current(environ={}).describe() == os_user()
    assert current(user="release-bot", environ=GITHUB).user == "release-bot"
    assert current(environ={**GITHUB, "DAGSYNC_PUBLISHED_BY": "named"}).user == "named"
