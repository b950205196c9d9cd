"""Run inside a clean CPython 3.12 (`python3.12 -I -S asset_runner.py ASSET EVENT RESULT`): import the
validator handler from the synthesized asset directory alone and call it with one recorded event.

Standard library only until the asset is on sys.path: this file proves the asset is complete."""

from __future__ import annotations

import importlib
import json
import sys
import uuid
from pathlib import Path

HANDLER = "lambdas.validator.handler.lambda_handler"


class LambdaContext:
    function_name = "dagsync-validator"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:dagsync-validator"
    log_group_name = "/aws/lambda/dagsync-validator"
    log_stream_name = "test"

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def main(asset: str, event_path: str, result_path: str) -> None:
    if any("site-packages" in entry or "dist-packages" in entry for entry in sys.path):
        raise SystemExit(f"not a clean interpreter: {sys.path}")
    sys.path.insert(0, asset)
    module_name, _, function_name = HANDLER.rpartition(".")
    handler = getattr(importlib.import_module(module_name), function_name)
    result = handler(json.loads(Path(event_path).read_text()), LambdaContext())
    origins = {name: sys.modules[name].__file__ for name in ("boto3", "pydantic", "yaml", "dagsync",
                                                              "aws_lambda_powertools")}
    Path(result_path).write_text(json.dumps({"result": result, "origins": origins}, default=str))


if __name__ == "__main__":
    main(*sys.argv[1:4])
