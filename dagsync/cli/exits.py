"""The exit statuses of `dagsync`, once. `--help`, the README and docs/validation.md take their table from here
(a test holds the two documents to `markdown_table()`)."""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    REJECTED = 3
    TIMEOUT = 4
    SUPERSEDED = 5
    DIFFERS = 6

    @property
    def meaning(self) -> str:
        return _MEANINGS[self]


_MEANINGS = {
    ExitStatus.OK: "done (with `--wait`: the change is live in the release printed)",
    ExitStatus.FAILED: "refused or failed; the message says why and nothing live changed (bad folder, unknown version, "
                       "S3 error, ...)",
    ExitStatus.USAGE: "bad usage",
    ExitStatus.REJECTED: "the validator rejected the manifest (`--wait`; its reason is printed), or `validate` found "
                         "the input invalid",
    ExitStatus.TIMEOUT: "timed out waiting: no release yet (`--wait`), or hosts lagging (`--wait-hosts`, named)",
    ExitStatus.SUPERSEDED: "superseded: a later manifest write replaced this change (`--wait`); publish or promote "
                           "again if yours should win",
    ExitStatus.DIFFERS: "`diff --exit-code` found that manifest, release and hosts differ",
}


def markdown_table() -> str:
    rows = "\n".join(f"| {s.value} | {s.meaning} |" for s in ExitStatus)
    return f"| exit code | meaning |\n| --- | --- |\n{rows}\n"


def epilog() -> str:
    return "exit codes:\n" + "\n".join(f"  {s.value}  {s.meaning.replace('`', '')}" for s in ExitStatus)
