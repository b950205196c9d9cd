"""Run inside a clean CPython 3.12 (`python3.12 -I -S asset_runner.py ASSET EVENT RESULT`): import the
validator handler from the synthesized asset directory alone and call it with one recorded event.

Standard library only until the asset is on sys.path: this file proves the asset is complete."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

HANDLER = "dagsync.lambdas.validator.lambda_handler"


def main(asset: str, event_path: str, result_path: str) -> None:
    if any("site-packages" in entry or "dist-packages" in entry for entry in sys.path):
        raise SystemExit(f"not a clean interpreter: {sys.path}")
    sys.path.insert(0, asset)
    module_name, _, function_name = HANDLER.rpartition(".")
    handler = getattr(importlib.import_module(module_name), function_name)
    context = importlib.import_module("dagsync.lambdas.invoke").InvocationContext()  # from the asset too
    result = handler(json.loads(Path(event_path).read_text()), context)
    origins = {name: sys.modules[name].__file__ for name in ("boto3", "pydantic", "yaml", "dagsync",
                                                              "aws_lambda_powertools", "cryptography")}
    Path(result_path).write_text(json.dumps({"result": result, "origins": origins}, default=str))


if __name__ == "__main__":
    main(*sys.argv[1:4])
