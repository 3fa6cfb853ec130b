"""Logging (structlog, std logging routed, context, masking) and the metrics exposition."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orderhub.logging import bind_context, bound, configure_logging, get_logger
from orderhub.metrics import CONTENT_TYPE, INBOX_PROCESSED, render


@pytest.fixture
def json_logs() -> io.StringIO:
    stream = io.StringIO()
    configure_logging(level="DEBUG", json=True, stream=stream)
    return stream


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_the_bound_context_then_drop_it(json_logs: io.StringIO) -> None:
    log = get_logger("orderhub.test")

    with bound(command_id="c-1", channel="topi", account="main", order_id="o-1"):
        log.info("dispatch.start", kind="accept")
    log.info("after")

    inside, after = lines(json_logs)
    assert inside["event"] == "dispatch.start"
    assert inside["command_id"] == "c-1"
    assert inside["channel"] == "topi"
    assert inside["order_id"] == "o-1"
    assert inside["level"] == "info"
    assert str(inside["timestamp"]).endswith("Z")
    assert "command_id" not in after


def test_standard_library_logging_goes_through_the_same_pipeline(json_logs: io.StringIO) -> None:
    bind_context(request_id="req-7", order_id=None)

    logging.getLogger("uvicorn.error").warning("port %d busy", 8000)

    (line,) = lines(json_logs)
    assert line["event"] == "port 8000 busy"
    assert line["logger"] == "uvicorn.error"
    assert line["request_id"] == "req-7"
    assert "order_id" not in line  # None values are not bound


def test_secrets_are_masked_in_fields_and_in_query_strings(json_logs: io.StringIO) -> None:
    log = get_logger("orderhub.test")

    log.info("token refreshed", access_token="AT-SECRET", settings={"client_secret": "CS"})
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/1.1" %d', "10.0.0.1", "POST", "/webhooks/x/y?token=PT-SECRET&a=1", 202
    )

    text = json_logs.getvalue()
    for secret in ("AT-SECRET", "PT-SECRET", '"CS"'):
        assert secret not in text
    assert "token=***&a=1" in text


def test_tracebacks_are_structured_and_without_local_variables(json_logs: io.StringIO) -> None:
    log = get_logger("orderhub.test")
    password = "LOCAL-SECRET"

    try:
        raise ValueError(f"boom {len(password)}")
    except ValueError:
        log.exception("failed")

    (line,) = lines(json_logs)
    assert "LOCAL-SECRET" not in json.dumps(line)
    exceptions = line["exception"]
    assert isinstance(exceptions, list)
    assert [e["exc_type"] for e in exceptions] == ["ValueError"]


def test_console_renderer_when_not_json() -> None:
    stream = io.StringIO()
    configure_logging(json=False, stream=stream)
    get_logger("orderhub.test").info("hello", channel="topi")

    text = stream.getvalue()
    assert "hello" in text
    assert "channel=topi" in text
    assert not text.lstrip().startswith("{")


def test_render_exposes_the_hub_metrics() -> None:
    INBOX_PROCESSED.labels("topi", "processed").inc()

    body, content_type = render()

    assert content_type == CONTENT_TYPE
    text = body.decode()
    for name in (
        "orderhub_webhooks_received_total",
        "orderhub_inbox_processed_total",
        "orderhub_commands_dispatched_total",
        "orderhub_command_dispatch_seconds_bucket",
        "orderhub_feed_events_written_total",
        "orderhub_enqueue_failures_total",
    ):
        assert f"# TYPE {name.removesuffix('_total').removesuffix('_bucket')}" in text
    assert 'orderhub_inbox_processed_total{channel="topi",outcome="processed"}' in text
    assert "python_gc" not in text  # our registry only, not the process collector


INCREMENT = """
from orderhub.metrics import COMMANDS_DISPATCHED
COMMANDS_DISPATCHED.labels("topi", "accept", "succeeded").inc({n})
"""
RENDER = """
import sys
from orderhub.metrics import render
sys.stdout.write(render()[0].decode())
"""


def test_multiprocess_mode_adds_up_every_process(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for n in (2, 3):  # two worker processes
        subprocess.run([sys.executable, "-c", INCREMENT.format(n=n)], env=env, check=True)

    out = subprocess.run(
        [sys.executable, "-c", RENDER], env=env, check=True, capture_output=True, text=True
    ).stdout

    assert (
        'orderhub_commands_dispatched_total{channel="topi",kind="accept",outcome="succeeded"} 5.0'
        in out
    )
