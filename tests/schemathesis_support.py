"""What the in-process fuzz (tests/unit/web) and the live one (tests/e2e) share: the
response checks and the steering that keeps a long-poll from sleeping."""

from __future__ import annotations

import math
from typing import Final

from schemathesis import Case
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CONFORMANCE: Final[list[CheckFunction]] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
"""Schemathesis's response checks, all of them on every answer: the status code documented
for the operation, the content type for that status, headers and body valid against their
schemas. Its other checks judge the requests (negative data rejected, positive data
accepted), which the fuzzers change on purpose (a known order id, a reused
Idempotency-Key, raw bytes)."""

MAX_WAIT: Final = 30  # the feed's long poll: a valid wait is cut to 0, the fuzz must not sleep


def cut_the_wait(case: Case) -> None:
    """A generated ``wait`` the feed would honour becomes 0 (the fuzz must not sleep)."""
    if not case.query or "wait" not in case.query:
        return
    values = case.query["wait"] if isinstance(case.query["wait"], list) else [case.query["wait"]]
    for value in values:
        try:
            seconds = float(str(value))
        except ValueError:
            continue
        if math.isfinite(seconds) and 0 < seconds <= MAX_WAIT:
            case.query["wait"] = "0"
