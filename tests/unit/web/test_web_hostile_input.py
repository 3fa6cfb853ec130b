"""A channel's order, webhook headers and API input carrying HTML, JavaScript and control
characters: stored as sent, never rendered raw. The console shows them as text (no
element, no event handler, no control character reaches the page), problem documents echo
them escaped, and log lines carry them escaped, one event per line, with no secret."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any, Final

import httpx
import pytest
import structlog

from orderhub.application.services.intake import Processed, process_message
from orderhub.logging import configure_logging
from orderhub.sanitize import CONTROL

from .console_support import sign_in
from .support import PATH_TOKEN, Harness, assert_problem, commanding

SCRIPT: Final = "<script>alert(1)</script>"
IMG: Final = '"><img src=x onerror=alert(2)>'
CONTROLS: Final = "\x1b[31m\r\nINFO forged\x07\x7f\u202e"
HOSTILE: Final = f"{SCRIPT}{IMG}{CONTROLS}"
CARD: Final = "4111 1111 1111 1111"
# what a page or a log shows of CONTROLS: escapes a person can read
VISIBLE: Final = "\\x1b[31m"
RAW_CONTROL: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e]")


class Elements(HTMLParser):
    """The tags and attributes of a page, and its text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.extend(attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def assert_shown_as_text(html: str, where: str) -> str:
    """No script, image or event handler on the page, no raw control character; returns
    the page's text."""
    page = Elements()
    page.feed(html)
    assert "script" not in page.tags, where
    assert "img" not in page.tags, where
    assert not [name for name, _ in page.attributes if name.startswith("on")], where
    assert RAW_CONTROL.search(html) is None, where
    return "".join(page.text)


@pytest.fixture
def console_log() -> Iterator[io.StringIO]:
    """The app's log lines as a console would show them, for one test."""
    root = logging.getLogger()
    handlers, level, config = list(root.handlers), root.level, structlog.get_config()
    stream = io.StringIO()
    configure_logging(level="INFO", json=False, stream=stream)
    try:
        yield stream
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        structlog.configure(**config)


def hostile_order(harness: Harness) -> dict[str, Any]:
    soon = (harness.clock.now() + timedelta(hours=1)).isoformat()
    return {
        "id": f"CH-{HOSTILE}",
        "order_number": HOSTILE,
        "ship_by": soon,
        "customer": {"name": HOSTILE, "email": f"{SCRIPT}@example.com", "company": CONTROLS},
        "address": {"name": HOSTILE, "line1": IMG, "city": CONTROLS, "country_code": "FR"},
        "lines": [{"id": f"L-{HOSTILE}", "sku": HOSTILE, "title": HOSTILE, "quantity": 1}],
    }


async def post_webhook(harness: Harness, raw: httpx.AsyncClient, data: dict[str, Any]) -> str:
    body = json.dumps(data).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"x-note", HOSTILE.replace("\u202e", "").encode("latin-1")),
    ]
    response = await raw.post(
        f"/webhooks/stub/pathtoken?token={PATH_TOKEN}", content=body, headers=headers
    )
    assert response.status_code == 202, response.text
    message_id: str = response.json()["message_id"]
    return message_id


async def test_a_hostile_order_is_shown_as_text_on_every_console_page(
    harness: Harness, raw_client: httpx.AsyncClient
) -> None:
    message_id = await post_webhook(harness, raw_client, hostile_order(harness))
    assert await process_message(harness.hub, message_id) is Processed.PROCESSED
    twice = {"id": f"CH2-{HOSTILE}", "lines": [{"id": HOSTILE, "quantity": 1}] * 2}
    failed_id = await post_webhook(harness, raw_client, twice)
    assert await process_message(harness.hub, failed_id) is Processed.FAILED  # ambiguous
    (order,) = harness.db.orders.values()
    await sign_in(harness.client)

    pages = {
        "overview": "/console/",
        "orders": "/console/orders",
        "search": "/console/orders?q=script",
        "order": f"/console/orders/{order.id}",
        "messages": f"/console/orders/{order.id}/messages",
        "message": f"/console/messages/{message_id}",
        "failed message": f"/console/messages/{failed_id}",
    }
    texts = {}
    for name, path in pages.items():
        page = await harness.client.get(path)
        assert page.status_code == 200, (name, page.text)
        texts[name] = assert_shown_as_text(page.text, name)
        policy = page.headers["content-security-policy"]  # no inline script would run
        assert "default-src 'none'" in policy
        assert "unsafe-inline" not in policy
        assert "unsafe-eval" not in policy

    for name in ("overview", "orders", "search", "order"):
        assert f"CH-{SCRIPT}{IMG}{VISIBLE}" in texts[name], name  # the order id, as text
    assert "Failed inbox messages (1)" in texts["overview"]
    assert f"{SCRIPT}{IMG}{VISIBLE}" in texts["overview"]  # the failure names the line
    order_text = texts["order"]
    for shown in (f"{IMG}{VISIBLE}", "\\u202e", f"{SCRIPT}@example.com", "FR"):
        assert shown in order_text
    assert order_text.count(f"{SCRIPT}{IMG}{VISIBLE}") >= 4  # number, customer, SKU, title
    assert f"x-note: {SCRIPT}{IMG}{VISIBLE}" in texts["message"]  # the header, escaped
    assert f"{SCRIPT}{IMG}" in texts["message"]  # the raw body: JSON, as text
    assert PATH_TOKEN not in "".join(texts.values())


async def test_problem_documents_echo_input_with_control_characters_escaped(
    harness: Harness,
) -> None:
    order = await harness.seed()
    body = json.dumps(
        {
            "carrier": "dhl",
            "tracking_number": "T1",
            "items": [{"line_id": HOSTILE, "quantity": 1}],
            HOSTILE: 1,
        }
    ).encode()

    response = await harness.client.post(
        f"/api/v1/orders/{order.id}/shipments",
        content=body,
        headers={**commanding(), "content-type": "application/json"},
    )

    problem = assert_problem(response, 422, "validation-error")
    raw = response.content.decode("utf-8")
    assert RAW_CONTROL.search(raw) is None
    assert f"{SCRIPT}{IMG}{VISIBLE}" in problem["detail"]  # JSON text, not markup
    assert CONTROL.search(json.dumps(problem, ensure_ascii=False)) is None

    unknown_line = await harness.client.post(
        f"/api/v1/orders/{order.id}/shipments",
        json={"carrier": "dhl", "tracking_number": "T2", "items": [{"line_id": HOSTILE,
                                                                       "quantity": 1}]},
        headers=commanding(),
    )  # fmt: skip
    refused = unknown_line.json()
    assert unknown_line.status_code == 422, refused
    assert CONTROL.search(refused["detail"]) is None
    assert VISIBLE in refused["detail"]


async def test_log_lines_of_hostile_requests_are_one_line_each_and_hold_no_secret(
    harness: Harness, raw_client: httpx.AsyncClient, console_log: io.StringIO
) -> None:
    data = hostile_order(harness)
    data["lines"][0]["title"] = f"paid with {CARD}"
    await post_webhook(harness, raw_client, data)
    ansi_channel = "%1B%5B31m%0D%0AERROR%20forged"
    await raw_client.post(f"/webhooks/{ansi_channel}/main", content=b"{}")  # 404, logged
    await raw_client.post("/webhooks/stub/4111111111111111", content=b"{}")  # 404 naming it
    await raw_client.post(
        "/webhooks/stub/plain",
        content=f'{{"card": "{CARD}"}}'.encode(),
        headers={"authorization": "Bearer WRONG-TOKEN-123456"},
    )  # 401, logged
    order = await harness.seed()
    await harness.client.post(
        f"/api/v1/orders/{order.id}/shipments",
        json={"carrier": CARD, "tracking_number": "T", "items": [{"line_id": HOSTILE,
                                                                   "quantity": 1}]},
        headers=commanding(),
    )  # fmt: skip

    text = console_log.getvalue()
    lines = text.splitlines()
    assert len(lines) >= 4
    assert all(not line.startswith("ERROR forged") for line in lines)
    assert "INFO forged" not in "".join(line[:60] for line in lines)
    assert RAW_CONTROL.search(text) is None
    assert "\r" not in text
    for secret in (CARD, "4111111111111111", "WRONG-TOKEN-123456", PATH_TOKEN):
        assert secret not in text
    # the channel the path named, escaped (the renderer quotes a value with spaces)
    assert re.search(r"channel='\\+x1b\[31m\\+r\\+nERROR forged'", text)
    assert "************1111" in text
    assert "the bearer token is not valid" in text
