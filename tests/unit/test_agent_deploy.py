"""agent/Dockerfile and agent/deploy/ parse and name the agent's real commands, flags, variables and port."""

from __future__ import annotations

import configparser
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from dagsync.agent.cli import build_parser
from dagsync.agent.config import CONFIG_ENV, DEFAULT_LISTEN, ENV_VARS, load_config
from dagsync.core import constants

AGENT_ROOM = Path(__file__).resolve().parents[2] / "agent"
DEPLOY = AGENT_ROOM / "deploy"
PORT = int(DEFAULT_LISTEN.rsplit(":", 1)[1])
KNOWN_ENV = set(ENV_VARS.values()) | {CONFIG_ENV}
# Where every example pins the validator's public key: where the CDK outputs tell hosts to (key "1").
TRUSTED_KEY = Path(constants.trusted_key_path(constants.DEFAULT_SIGNING_KEY))
KEYS_CONFIGMAP = "dagsync-release-keys"


def subcommand_flags(name: str) -> set[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return {opt for action in sub.choices[name]._actions for opt in action.option_strings}  # type: ignore[attr-defined]


def check_agent_argv(argv: list[str]) -> None:
    """argv after the `dagsync-agent` program name: a real subcommand and only its real flags."""
    assert argv and argv[0] in ("run", "once"), argv
    flags = subcommand_flags(argv[0])
    for token in argv[1:]:
        if token.startswith("--"):
            assert token.split("=", 1)[0] in flags, f"{token} is not a flag of dagsync-agent {argv[0]}"
    build_parser().parse_args([a.replace('"$POD_NAME"', "pod-0").replace("$POD_NAME", "pod-0") for a in argv])


def yaml_docs(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def agent_containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc["spec"]
    pod = spec["template"]["spec"] if "template" in spec else spec
    containers = [*pod.get("initContainers", []), *pod.get("containers", [])]
    return [c for c in containers if c["image"].startswith("dagsync-agent")]


def argv_of(container: dict[str, Any]) -> list[str]:
    args = list(container.get("args", []))
    if container.get("command") == ["sh", "-c"]:
        script = " ".join(args)
        argv = shlex.split(script.replace("exec ", "", 1))
        assert argv[0] == "dagsync-agent"
        return argv[1:]
    assert "command" not in container  # the image's ENTRYPOINT is dagsync-agent
    return args


def check_trusted_key_mounted(doc: dict[str, Any], container: dict[str, Any]) -> None:
    """The pinned key file that DAGSYNC_TRUSTED_KEYS names is there: the keys ConfigMap, read-only."""
    spec = doc["spec"]
    pod = spec["template"]["spec"] if "template" in spec else spec
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = [m for m in container["volumeMounts"] if m["mountPath"] == str(TRUSTED_KEY.parent)]
    assert len(mounts) == 1 and mounts[0].get("readOnly") is True, container["name"]
    assert volumes[mounts[0]["name"]]["configMap"]["name"] == KEYS_CONFIGMAP


def check_probe(probe: dict[str, Any], path: str) -> None:
    assert probe["httpGet"] == {"path": path, "port": PORT}


K8S = sorted((DEPLOY / "kubernetes").glob("*.yaml"))


@pytest.mark.parametrize("path", K8S, ids=lambda p: p.name)
def test_kubernetes_manifests_use_real_commands_flags_and_ports(path: Path) -> None:
    for doc in yaml_docs(path):
        assert doc["apiVersion"] and doc["kind"]
        if doc["kind"] == "ConfigMap":
            if doc["metadata"]["name"] == KEYS_CONFIGMAP:
                assert set(doc["data"]) == {TRUSTED_KEY.name}
                assert doc["data"][TRUSTED_KEY.name].startswith("-----BEGIN PUBLIC KEY-----\n")
                continue
            assert set(doc["data"]) <= KNOWN_ENV
            cfg = load_config({"dags_dir": "/opt/airflow/dags"}, doc["data"])
            assert cfg.trusted_keys == (TRUSTED_KEY,) and not cfg.allow_unsigned
            continue
        containers = agent_containers(doc)
        assert containers, f"{path.name} has no dagsync-agent container"
        for c in containers:
            check_agent_argv(argv_of(c))
            check_trusted_key_mounted(doc, c)
            for env in c.get("env", []):
                assert env["name"] in KNOWN_ENV | {"POD_NAME"}
            if argv_of(c)[0] == "run":
                check_probe(c["readinessProbe"], "/readyz")
                check_probe(c["livenessProbe"], "/healthz")
                assert c["ports"][0]["containerPort"] == PORT


def test_there_is_a_sidecar_and_an_init_container_example() -> None:
    commands = {argv_of(c)[0] for p in K8S for d in yaml_docs(p) if d["kind"] != "ConfigMap"
                for c in agent_containers(d)}
    assert commands == {"run", "once"}


def test_dockerfile_is_non_root_and_runs_the_agent() -> None:
    lines = (AGENT_ROOM / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
    instructions = [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines
                    if ln.strip() and not ln.lstrip().startswith("#")]
    by_kind: dict[str, list[str]] = {}
    for kind, rest in instructions:
        by_kind.setdefault(kind, []).append(rest)
    assert by_kind["FROM"][0].startswith("python:3.")
    user = by_kind["USER"][-1].split(":")[0]
    assert user not in ("root", "0")
    assert yaml.safe_load(by_kind["ENTRYPOINT"][-1]) == ["dagsync-agent"]
    check_agent_argv(yaml.safe_load(by_kind["CMD"][-1]))
    assert by_kind["EXPOSE"] == [str(PORT)]
    env = " ".join(by_kind["ENV"])
    for var in re.findall(r"\b(DAGSYNC_[A-Z_]+)=", env):
        assert var in KNOWN_ENV
    assert f"DAGSYNC_LISTEN=0.0.0.0:{PORT}" in env


def test_compose_example_wires_the_agent_to_the_shared_volume() -> None:
    doc = yaml_docs(DEPLOY / "compose" / "docker-compose.yml")[0]
    agent = doc["services"]["dagsync-agent"]
    assert agent["build"]["dockerfile"] == "agent/Dockerfile"
    context = (DEPLOY / "compose" / agent["build"]["context"]).resolve()
    assert (context / agent["build"]["dockerfile"]).exists()
    check_agent_argv(agent["command"])
    assert set(agent["environment"]) <= KNOWN_ENV
    assert agent["environment"]["DAGSYNC_TRUSTED_KEYS"] == str(TRUSTED_KEY)
    assert f"{TRUSTED_KEY.parent}:{TRUSTED_KEY.parent}:ro" in agent["volumes"]
    assert agent["ports"] == [f"127.0.0.1:{PORT}:{PORT}"]
    assert "/readyz" in " ".join(agent["healthcheck"]["test"]) and f":{PORT}/" in " ".join(agent["healthcheck"]["test"])
    for name, service in doc["services"].items():
        assert "dags:/opt/airflow/dags" in service["volumes"][0], name


def test_systemd_unit_runs_the_agent_with_a_valid_config_file() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "systemd" / "dagsync-agent.service")
    exec_start = shlex.split(unit["Service"]["ExecStart"])
    assert exec_start[0].endswith("/dagsync-agent")
    check_agent_argv(exec_start[1:])
    assert unit["Service"]["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert unit["Service"]["KillSignal"] == "SIGTERM"
    cfg = load_config({}, {}, DEPLOY / "systemd" / "agent.yaml")
    assert cfg.listen_address == ("127.0.0.1", PORT)
    assert cfg.trusted_keys == (TRUSTED_KEY,) and not cfg.allow_unsigned
    assert str(cfg.dags_dir) in unit["Service"]["ReadWritePaths"]
