"""The suite synthesizes the real app (`python app.py`, every environment, cdk-nag on) once per session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Assembly:
    outdir: Path
    manifest: dict[str, Any]

    def stacks(self) -> list[str]:
        return sorted(k for k, v in self.manifest["artifacts"].items() if v["type"] == "aws:cloudformation:stack")

    def template_path(self, stack: str) -> Path:
        return self.outdir / f"{stack}.template.json"

    def template(self, stack: str) -> dict[str, Any]:
        return dict(json.loads(self.template_path(stack).read_text()))

    def function(self, stack: str, handler: str) -> dict[str, Any]:
        """The properties of the Lambda function with this handler string."""
        template = self.template(stack)
        return next(v["Properties"] for v in template["Resources"].values()
                    if v["Type"] == "AWS::Lambda::Function" and v["Properties"].get("Handler") == handler)

    def asset_dir(self, stack: str, handler: str) -> Path:
        """The staged directory of that function's code asset (S3Key is "<asset hash>.zip")."""
        key = self.function(stack, handler)["Code"]["S3Key"]
        return self.outdir / f"asset.{key.removesuffix('.zip')}"


@pytest.fixture(scope="session")
def assembly(tmp_path_factory: pytest.TempPathFactory) -> Assembly:
    """`python app.py` in a clean process, exactly as the CDK CLI would run it (it reads cdk.json itself)."""
    outdir = tmp_path_factory.mktemp("cdk.out")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDK_")}
    env["CDK_OUTDIR"] = str(outdir)
    result = subprocess.run([sys.executable, "app.py"], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, f"python app.py failed:\n{result.stdout[-4000:]}\n{result.stderr[-8000:]}"
    return Assembly(outdir=outdir, manifest=json.loads((outdir / "manifest.json").read_text()))
