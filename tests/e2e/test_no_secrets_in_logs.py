"""Nothing secret reaches the logs: the stack, the agent (debug level, success and failure paths) and the CLI
(verbose, success and refusal) run with recognisable credentials, which must appear in no output."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from dagsync.local.procs import _bin, agent_command, aws_env, running, start_agent, start_local_stack, wait_for
from tests.e2e.reliability import figures_line
from tests.support.projects import EXAMPLES

pytestmark = pytest.mark.e2e
SECRET = "SECRETxKEYx0123456789abcdefDONOTLOG"
TOKEN = "SESSIONxTOKENx9876543210zyxwvDONOTLOG"
KEY_ID = "AKIADAGSYNCTESTKEYID"


def test_credentials_never_appear_in_any_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given credentials that are easy to recognise, for every process
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    outputs: dict[str, str] = {}
    stack_log = tmp_path / "stack.log"
    with open(stack_log, "w") as log:
        stack = start_local_stack(hosts=1, log=log)
        agent = start_agent(stack, "host-1", tmp_path / "dags", log_path=tmp_path / "agent.log",
                            extra=["--log-level", "debug"])
        with running(stack, agent):
            env = {**os.environ, **aws_env(stack)}

            def cli(name: str, *args: str) -> int:
                done = subprocess.run([*_bin("dagsync"), "-v", *args], capture_output=True, text=True, env=env,
                                      timeout=120)
                outputs[name] = done.stdout + done.stderr
                return done.returncode

            # When CI publishes, promotes, asks for status, and gets refused
            assert cli("publish", "publish", "sales", "1.0.0", str(EXAMPLES / "sales"), "--promote", "--wait") == 0
            assert wait_for(lambda: (tmp_path / "dags" / "sales").is_dir(), timeout=60)
            assert cli("status", "status", "--json") == 0
            assert cli("refused", "promote", "sales", "9.9.9") != 0
            assert cli("bad bucket", "status", "--bucket", "no-such-bucket-here") != 0
            # And an agent fails against a bucket that does not exist
            failing = subprocess.run(
                [*agent_command(stack, "host-1", tmp_path / "other", mode="once"), "--bucket", "no-such-bucket-here",
                 "--log-level", "debug"], capture_output=True, text=True, env=env, timeout=120)
            assert failing.returncode != 0
            outputs["agent once failing"] = failing.stdout + failing.stderr
    outputs["stack"] = stack_log.read_text()
    outputs["agent"] = (tmp_path / "agent.log").read_text()
    outputs["state.json"] = (tmp_path / "dags" / ".dagsync" / "state.json").read_text()
    # Then neither the secret key nor the session token is in any of it
    leaks = [name for name, text in outputs.items() if SECRET in text or TOKEN in text]
    print(figures_line("secrets", outputs_checked=len(outputs), bytes_checked=sum(map(len, outputs.values())),
                       leaks=len(leaks)))
    assert leaks == []
    assert all(text for text in outputs.values())
