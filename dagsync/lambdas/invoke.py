"""The context a handler gets when it is invoked outside Lambda: by the local stack's event-source runner, and by
the check that runs the synthesized asset on a clean interpreter. It has what Powertools reads."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field


@dataclass
class InvocationContext:
    function_name: str = "dagsync-local-validator"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:dagsync-local-validator"
    log_group_name: str = "/aws/lambda/dagsync-local-validator"
    log_stream_name: str = "local"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def get_remaining_time_in_millis(self) -> int:
        return 60_000
