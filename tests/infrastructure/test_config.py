"""Environment configuration from cdk.json context: hosts as names or groups, validated early."""

from __future__ import annotations

import pytest

from infra.config import ConfigError, expand_hosts, parse_environment, parse_environments


def test_groups_expand_to_numbered_hosts() -> None:
    assert expand_hosts(["scheduler", {"group": "worker", "count": 3}]) == (
        "scheduler", "worker-1", "worker-2", "worker-3")


@pytest.mark.parametrize("hosts, message", [
    (["Bad_Name"], "host name"),
    (["a", "a"], "more than once"),
    (["worker-1", "worker1"], "differ only in dashes"),
    ([{"group": "w", "count": 0}], "positive integer"),
    ([{"group": "w"}], "host entry"),
])
def test_bad_hosts_are_refused_with_the_reason(hosts: list[object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        expand_hosts(hosts)


def test_an_environment_gets_its_prefix_stack_name_and_defaults() -> None:
    config = parse_environment("dev", {"hosts": ["a"], "account": "123456789012", "region": "eu-west-1"})
    assert (config.prefix, config.stack_name, config.retain_data) == ("dagsync-dev", "DagSync-dev", True)
    assert (config.account, config.region, config.alarm_email) == ("123456789012", "eu-west-1", None)
    assert config.release_history_days == 400


@pytest.mark.parametrize("raw, message", [
    ({"retention_days": 10}, "retention_days"),
    ({"release_history_days": 0}, "release_history_days"),
    ({"release_history_days": "a year"}, "release_history_days"),
    ({"reconcile_interval_s": 0}, "reconcile_interval_s"),
    ({"hots": []}, "unknown keys"),
    ({"signing_keys": []}, "non-empty list"),
    ({"signing_keys": ["Key One"]}, "signing_keys"),
    ({"signing_keys": ["1", "1"]}, "more than once"),
    ({"signing_keys": ["1", "2"], "signing_key": "3"}, "not one of signing_keys"),
])
def test_bad_settings_are_refused(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_environment("dev", raw)


def test_no_environments_is_an_error() -> None:
    with pytest.raises(ConfigError, match="dagsync:environments"):
        parse_environments({})


def test_the_first_signing_key_signs_until_told_otherwise() -> None:
    # A rotation's first step adds the next key without switching to it
    assert parse_environment("dev", {"hosts": ["a"]}).signing_keys == ("1",)
    adding = parse_environment("dev", {"hosts": ["a"], "signing_keys": ["1", "2"]})
    assert (adding.signing_keys, adding.signing_key) == (("1", "2"), "1")
    switched = parse_environment("dev", {"hosts": ["a"], "signing_keys": ["1", "2"], "signing_key": "2"})
    assert switched.signing_key == "2"
