"""Configuration: flags > DAGSYNC_* env > YAML file > defaults; bad values are fatal and named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dagsync.agent.cli import build_parser, main
from dagsync.agent.config import DEFAULT_LISTEN, ENV_VARS, AgentConfig, ConfigError, load_config
from dagsync.core import constants

KEYS = "/etc/dagsync/keys/release-signing-1.pem"


def test_defaults(tmp_path: Path) -> None:
    cfg = load_config({"dags_dir": str(tmp_path), "bucket": "my-bucket", "trusted_keys": KEYS}, {})
    assert cfg.reconcile_interval == 60.0 and cfg.keep_versions == 2 and cfg.max_failures == 0
    assert cfg.listen == DEFAULT_LISTEN and cfg.listen_address == ("127.0.0.1", 9465)


def test_flag_beats_env_beats_file(tmp_path: Path) -> None:
    cfile = tmp_path / "agent.yaml"
    cfile.write_text("bucket: from-file\nreconcile-interval: 5\nkeep_versions: 4\nhost: file-host\n")
    env = {"DAGSYNC_BUCKET": "from-env", "DAGSYNC_RECONCILE_INTERVAL": "7.5", "DAGSYNC_DAGS_DIR": str(tmp_path),
           "DAGSYNC_TRUSTED_KEYS": KEYS}
    cfg = load_config({"reconcile_interval": 1.5, "bucket": None}, env, cfile)
    assert cfg.reconcile_interval == 1.5  # flag
    assert cfg.bucket == "from-env"  # env over file
    assert cfg.keep_versions == 4 and cfg.host == "file-host"  # file over default


def test_config_file_from_env_variable(tmp_path: Path) -> None:
    cfile = tmp_path / "agent.yaml"
    cfile.write_text(f"bucket: b-from-file\ndags_dir: {tmp_path}\ntrusted_keys: [{KEYS}]\n")
    assert load_config({}, {"DAGSYNC_CONFIG": str(cfile)}).bucket == "b-from-file"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DAGSYNC_RECONCILE_INTERVAL": "-1"}, "reconcile_interval (env DAGSYNC_RECONCILE_INTERVAL)"),
        ({"DAGSYNC_KEEP_VERSIONS": "zero"}, "keep_versions (env DAGSYNC_KEEP_VERSIONS)"),
        ({"DAGSYNC_LISTEN": "localhost"}, "listen (env DAGSYNC_LISTEN)"),
        ({"DAGSYNC_HOST": "Bad_Host"}, "host (env DAGSYNC_HOST)"),
        ({"DAGSYNC_QUEUE_URL": "not a url"}, "queue_url (env DAGSYNC_QUEUE_URL)"),
        ({"DAGSYNC_BUCKET": "UPPER"}, "bucket (env DAGSYNC_BUCKET)"),
    ],
)
def test_bad_value_names_the_setting_and_its_source(tmp_path: Path, env: dict[str, str], named: str) -> None:
    base = {"DAGSYNC_DAGS_DIR": str(tmp_path), "DAGSYNC_BUCKET": "ok-bucket"}
    with pytest.raises(ConfigError, match=named.replace("(", r"\(").replace(")", r"\)")):
        load_config({}, {**base, **env})


def test_missing_required_setting_says_how_to_set_it() -> None:
    with pytest.raises(ConfigError, match="bucket .*DAGSYNC_BUCKET"):
        load_config({"dags_dir": "/tmp/x"}, {})


def test_unknown_key_in_file_is_an_error(tmp_path: Path) -> None:
    cfile = tmp_path / "agent.yaml"
    cfile.write_text("bucket: b-ok\ndags_dir: /tmp\nreconcile_intervall: 3\n")
    with pytest.raises(ConfigError, match="reconcile_intervall"):
        load_config({}, {}, cfile)


def test_listen_zero_disables_the_server(tmp_path: Path) -> None:
    cfg = load_config({"dags_dir": str(tmp_path), "bucket": "bkt", "listen": "0", "trusted_keys": KEYS}, {})
    assert cfg.listen_address is None


def test_redacted_config_hides_url_credentials(tmp_path: Path) -> None:
    cfg = load_config({"dags_dir": str(tmp_path), "bucket": "bkt", "trusted_keys": KEYS,
                       "endpoint_url": "http://user:s3cret@127.0.0.1:5000/?token=abc"}, {})
    shown = json.dumps(cfg.redacted())
    assert "s3cret" not in shown and "abc" not in shown and "127.0.0.1:5000" in shown


def test_cli_exits_2_and_names_the_bad_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    for var in ("DAGSYNC_BUCKET", "DAGSYNC_DAGS_DIR", "DAGSYNC_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DAGSYNC_MAX_FAILURES", "-3")
    rc = main(["once", "--dags-dir", str(tmp_path), "--bucket", "bkt"])
    assert rc == 2
    assert "max_failures (env DAGSYNC_MAX_FAILURES)" in capsys.readouterr().err


def test_every_setting_has_a_flag_on_both_commands() -> None:
    parser = build_parser()
    run = parser.parse_args(["run", "--reconcile-interval", "0.5", "--listen", "0", "--max-failures", "3"])
    assert (run.reconcile_interval, run.listen, run.max_failures) == (0.5, "0", 3)
    once = parser.parse_args(["once", "--project", "a", "--project", "b"])
    assert once.project == ["a", "b"]


def test_the_environment_names_a_deployment_hands_out_are_the_settings_own() -> None:
    # Given the names the CDK outputs and the deployment examples use (dagsync.core.constants)
    handed_out = {"bucket": constants.ENV_BUCKET, "queue_url": constants.ENV_QUEUE_URL, "host": constants.ENV_HOST,
                  "dags_dir": constants.ENV_DAGS_DIR, "reconcile_interval": constants.ENV_RECONCILE_INTERVAL,
                  "endpoint_url": constants.ENV_ENDPOINT_URL, "region": constants.ENV_REGION,
                  "trusted_keys": constants.ENV_TRUSTED_KEYS}
    # Then each is the variable the agent's settings read
    assert {name: ENV_VARS[name] for name in handed_out} == handed_out
    assert AgentConfig.model_fields["reconcile_interval"].default == constants.DEFAULT_RECONCILE_INTERVAL_S


def test_docs_list_every_setting_with_its_flag_and_environment_variable() -> None:
    table = (Path(__file__).resolve().parents[2] / "docs" / "agent.md").read_text()
    for name, field in AgentConfig.model_fields.items():
        row = next((line for line in table.splitlines()
                    if line.startswith(f"| `--{name.replace('_', '-')}` | `{ENV_VARS[name]}` |")), None)
        assert row is not None, f"docs/agent.md has no row for --{name.replace('_', '-')} / {ENV_VARS[name]}"
        if isinstance(field.default, int | float) and not isinstance(field.default, bool):
            assert f"{field.default:g}" in row, f"docs/agent.md gives another default for {name}: {row}"


def test_without_trusted_keys_the_agent_refuses_to_start_unless_told_to_accept_unsigned(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for var in ("DAGSYNC_BUCKET", "DAGSYNC_DAGS_DIR", "DAGSYNC_CONFIG", "DAGSYNC_TRUSTED_KEYS",
                "DAGSYNC_ALLOW_UNSIGNED", "DAGSYNC_TRUSTED_KMS_KEYS"):
        monkeypatch.delenv(var, raising=False)
    # Given no trusted keys / When the agent starts / Then it exits 2 and says what to set
    assert main(["once", "--dags-dir", str(tmp_path), "--bucket", "bkt"]) == 2
    err = capsys.readouterr().err
    assert "no trusted release signing keys" in err and "--trusted-keys" in err and "--allow-unsigned" in err
    # And the explicit opt-out is accepted from the flag, the environment or the file
    base = {"dags_dir": str(tmp_path), "bucket": "bkt"}
    assert load_config({**base, "allow_unsigned": True}, {}).allow_unsigned
    assert load_config(base, {"DAGSYNC_ALLOW_UNSIGNED": "true"}).allow_unsigned
    assert build_parser().parse_args(["run", "--allow-unsigned"]).allow_unsigned is True
    assert build_parser().parse_args(["run"]).allow_unsigned is None  # absent: the env or the file decides
    # But not together with trusted keys
    with pytest.raises(ConfigError, match="both set"):
        load_config({**base, "allow_unsigned": True, "trusted_keys": KEYS}, {})


def test_trusted_keys_are_comma_separated_in_the_environment_and_a_list_in_the_file(tmp_path: Path) -> None:
    base = {"dags_dir": str(tmp_path), "bucket": "bkt"}
    cfg = load_config(base, {"DAGSYNC_TRUSTED_KEYS": " /k/old.pem, /k/new.pem ,"})
    assert cfg.trusted_keys == (Path("/k/old.pem"), Path("/k/new.pem"))
    cfile = tmp_path / "agent.yaml"
    cfile.write_text("trusted_keys: [/k/a.pem, relative.pem]\ntrusted_kms_keys: alias/x,alias/y\n")
    cfg = load_config(base, {}, cfile)
    assert cfg.trusted_keys == (Path("/k/a.pem"), Path("relative.pem").absolute())
    assert cfg.trusted_kms_keys == ("alias/x", "alias/y")


@pytest.mark.parametrize("bad", ["missing.pem", "not-a-key.pem"])
def test_a_bad_trusted_key_file_is_fatal_at_start_and_named(tmp_path: Path, bad: str, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    for var in ("DAGSYNC_BUCKET", "DAGSYNC_DAGS_DIR", "DAGSYNC_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    path = tmp_path / bad
    if bad == "not-a-key.pem":
        path.write_text("hello\n")
    rc = main(["once", "--dags-dir", str(tmp_path / "dags"), "--bucket", "bkt", "--trusted-keys", str(path)])
    assert rc == 2 and str(path) in capsys.readouterr().err
    assert not (tmp_path / "dags").exists()  # nothing was touched
