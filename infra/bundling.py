"""Local (Docker-free) bundling of the validator Lambda: only the parts of `dagsync` it runs (the core, the gate
and the handler) plus manylinux x86_64 CPython 3.12 wheels of lambdas/validator/requirements.txt. Nothing else
of the package (the CLI, the agent, the local stack) is copied or hashed, so editing those never redeploys it."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

REPO_ROOT = Path(__file__).resolve().parent.parent
# What the validator Lambda imports: its handler, the gate and the core (an import contract holds the gate and the
# core to that; tests/infrastructure/test_validator_asset.py checks the synthesized asset).
PACKAGES = ("dagsync/core", "dagsync/gate", "dagsync/lambdas")
PACKAGE_FILES = ("dagsync/__init__.py",)
REQUIREMENTS = Path("lambdas") / "validator" / "requirements.txt"
PYTHON_VERSION = "3.12"
PLATFORM = "manylinux2014_x86_64"
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")


def _skipped(path: Path) -> bool:
    return "__pycache__" in path.parts or path.suffix == ".pyc" or any(p.endswith(".egg-info") for p in path.parts)


def pip_command(target: Path, requirements: Path) -> list[str]:
    return [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
        "--platform", PLATFORM, "--implementation", "cp", "--python-version", PYTHON_VERSION,
        "--only-binary=:all:", "--target", str(target), "-r", str(requirements),
    ]


def source_hash(root: Path = REPO_ROOT) -> str:
    """Fingerprint of everything that goes into the bundle (so the asset changes when, and only when,
    the code, the requirements or this bundler change)."""
    digest = hashlib.sha256()
    files = [root / REQUIREMENTS, Path(__file__), *(root / f for f in PACKAGE_FILES)]
    for package in PACKAGES:
        files.extend(p for p in (root / package).rglob("*") if p.is_file() and not _skipped(p))
    for path in sorted(set(files)):
        digest.update(str(path.relative_to(root) if path.is_relative_to(root) else path.name).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@jsii.implements(ILocalBundling)
class LocalPythonBundler:
    def __init__(self, root: Path = REPO_ROOT) -> None:
        self.root = root

    def try_bundle(self, output_dir: str, options: BundlingOptions) -> bool:
        out = Path(output_dir)
        for package in PACKAGES:
            shutil.copytree(self.root / package, out / package, ignore=_SKIP, dirs_exist_ok=True)
        for name in PACKAGE_FILES:
            shutil.copy2(self.root / name, out / name)
        result = subprocess.run(pip_command(out, self.root / REQUIREMENTS), capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"pip install for the validator bundle failed:\n{result.stdout}\n{result.stderr}")
        return True


def validator_code(root: Path = REPO_ROOT) -> lambda_.Code:
    return lambda_.Code.from_asset(
        str(root / REQUIREMENTS.parent),
        asset_hash_type=AssetHashType.CUSTOM,
        asset_hash=source_hash(root),
        bundling=BundlingOptions(
            # Never pulled: the local bundler always succeeds or raises. Docker is not required.
            image=DockerImage.from_registry("public.ecr.aws/sam/build-python3.12"),
            local=LocalPythonBundler(root),  # type: ignore[arg-type]  # jsii protocol; signature as jsii calls it
        ),
    )
