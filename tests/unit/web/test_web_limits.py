"""Every limit of docs/limits.md, sent one over: a 4xx problem (or, for what a channel
sends, a stored message failed with the reason), never a 5xx nor a crashed worker."""

from __future__ import annotations

import json
from typing import Any, Final

import pytest

from orderhub.application.limits import MAX_LINES_PER_ORDER
from orderhub.application.services.intake import Processed, process_message
from orderhub.entrypoints.web import WebSettings
from orderhub.entrypoints.web.routes.feed import MAX_LIMIT as FEED_MAX_LIMIT
from orderhub.entrypoints.web.routes.feed import MAX_WAIT_SECONDS
from orderhub.entrypoints.web.routes.invoices import MAX_NUMBER as MAX_INVOICE_NUMBER
from orderhub.entrypoints.web.routes.orders import MAX_LIMIT as ORDERS_MAX_LIMIT
from orderhub.entrypoints.web.schemas import MAX_ID, MAX_SERIALS_PER_ITEM, MAX_TEXT, MAX_URL

from .support import API_KEYS, PATH_TOKEN, Harness, assert_problem, auth, commanding

BODY_LIMIT: Final = 8 * 1024 * 1024  # room for the largest over-limit bodies below
HUGE_ORDER_LINES: Final = 100_000


@pytest.fixture
def settings() -> WebSettings:
    return WebSettings(api_keys=API_KEYS, max_body_bytes=BODY_LIMIT)


def line_quantities(count: int) -> list[dict[str, Any]]:
    return [{"line_id": f"l{i}", "quantity": 1} for i in range(count)]


def shipment(**fields: Any) -> dict[str, Any]:
    return {"carrier": "dhl", "tracking_number": "T1", "items": line_quantities(1), **fields}


OVER: Final[list[tuple[str, str, dict[str, Any]]]] = [
    ("lines in an acceptance", "accept", {"lines": line_quantities(MAX_LINES_PER_ORDER + 1)}),
    ("lines in a rejection", "reject",
     {"reason": "out_of_stock", "lines": line_quantities(MAX_LINES_PER_ORDER + 1)}),
    ("lines in a cancellation", "cancellations",
     {"reason": "out_of_stock", "lines": line_quantities(MAX_LINES_PER_ORDER + 1)}),
    ("items in a shipment", "shipments",
     shipment(items=line_quantities(MAX_LINES_PER_ORDER + 1))),
    ("a line id", "accept", {"lines": [{"line_id": "l" * (MAX_TEXT + 1), "quantity": 1}]}),
    ("a carrier", "shipments", shipment(carrier="c" * (MAX_TEXT + 1))),
    ("a tracking number", "shipments", shipment(tracking_number="t" * (MAX_TEXT + 1))),
    ("a tracking URL", "shipments", shipment(tracking_url="https://x/" + "u" * MAX_URL)),
    ("a fulfilment id", "shipments", shipment(fulfilment_id="f" * (MAX_ID + 1))),
    ("a fulfilment id to deliver", "deliveries", {"fulfilment_id": "f" * (MAX_ID + 1)}),
    ("a cancellation id", "cancellations",
     {"decision": "accept", "cancellation_id": "c" * (MAX_ID + 1)}),
    ("serial numbers of an item", "shipments",
     shipment(items=[{"line_id": "l0", "quantity": 1,
                      "serial_numbers": ["s"] * (MAX_SERIALS_PER_ITEM + 1)}])),
    ("a serial number", "shipments",
     shipment(items=[{"line_id": "l0", "quantity": 1, "serial_numbers": ["s" * 501]}])),
    ("a quantity", "accept", {"lines": [{"line_id": "l0", "quantity": 2**31}]}),
]  # fmt: skip


@pytest.mark.parametrize(("what", "command", "body"), OVER, ids=[o[0] for o in OVER])
async def test_a_command_over_a_limit_is_a_422_naming_the_field(
    harness: Harness, what: str, command: str, body: dict[str, Any]
) -> None:
    order = await harness.seed()
    before = harness.state()

    response = await harness.client.post(
        f"/api/v1/orders/{order.id}/{command}", json=body, headers=commanding()
    )

    problem = assert_problem(response, 422, "validation-error")
    assert problem["errors"][0]["source"] == "body", problem
    assert harness.state() == before


async def test_a_command_at_the_limits_is_not_refused_for_its_size(harness: Harness) -> None:
    order = await harness.seed(lines=[{"id": "a", "quantity": MAX_SERIALS_PER_ITEM}])
    line_id = order.lines[0].id
    at_limit = shipment(
        carrier="c" * MAX_TEXT,
        tracking_url="https://x/" + "u" * (MAX_URL - 10),
        items=[{"line_id": line_id, "quantity": MAX_SERIALS_PER_ITEM,
                "serial_numbers": [f"s{i}" for i in range(MAX_SERIALS_PER_ITEM)]}],
    )  # fmt: skip
    await harness.client.post(f"/api/v1/orders/{order.id}/accept", headers=commanding())

    response = await harness.client.post(
        f"/api/v1/orders/{order.id}/shipments", json=at_limit, headers=commanding()
    )

    assert response.status_code == 202, response.text[:500]


async def test_a_body_over_max_body_bytes_is_413(harness: Harness) -> None:
    order = await harness.seed()
    response = await harness.client.post(
        f"/api/v1/orders/{order.id}/accept",
        content=b'{"lines": [' + b" " * BODY_LIMIT + b"]}",
        headers={**commanding(), "content-type": "application/json"},
    )
    assert_problem(response, 413, "payload-too-large")


@pytest.mark.parametrize(
    "query",
    [
        f"/api/v1/feed?limit={FEED_MAX_LIMIT + 1}",
        f"/api/v1/feed?wait={MAX_WAIT_SECONDS + 0.001}",
        f"/api/v1/orders?limit={ORDERS_MAX_LIMIT + 1}",
        "/api/v1/ops/failed-commands?limit=100000",
        "/api/v1/ops/failed-messages?limit=100000",
    ],
)
async def test_a_page_or_wait_over_its_limit_is_422(harness: Harness, query: str) -> None:
    key = "operator" if "/ops/" in query else "reader"
    response = await harness.client.get(query, headers=auth(key))
    problem = assert_problem(response, 422, "validation-error")
    assert problem["errors"][0]["source"] == "query"


async def test_a_channel_order_with_100k_lines_is_stored_then_failed_with_the_reason(
    harness: Harness,
) -> None:
    lines = [{"id": f"L{i}", "quantity": 1} for i in range(HUGE_ORDER_LINES)]
    body = json.dumps({"id": "HUGE-1", "lines": lines}).encode()
    assert len(body) < BODY_LIMIT

    stored = await harness.client.post(f"/webhooks/stub/pathtoken?token={PATH_TOKEN}", content=body)

    assert stored.status_code == 202, stored.text  # the channel's word is kept
    message_id = stored.json()["message_id"]
    assert await process_message(harness.hub, message_id) is Processed.FAILED
    message = harness.db.inbox[message_id]
    assert message.last_error is not None
    assert f"has {HUGE_ORDER_LINES} lines" in message.last_error
    assert f"at most {MAX_LINES_PER_ORDER}" in message.last_error
    assert "TooManyLines" in message.last_error
    assert not harness.db.orders  # nothing of it applied
    assert harness.db.inbox[message_id].body == body  # kept for an operator


async def test_a_channel_order_at_the_line_limit_is_applied(harness: Harness) -> None:
    order = await harness.seed(
        lines=[{"id": f"L{i}", "quantity": 1} for i in range(MAX_LINES_PER_ORDER)]
    )
    assert len(order.lines) == MAX_LINES_PER_ORDER


async def test_an_idempotency_key_over_255_characters_is_422(harness: Harness) -> None:
    order = await harness.seed()
    response = await harness.client.post(
        f"/api/v1/orders/{order.id}/accept",
        headers={**auth("writer"), "Idempotency-Key": "k" * 256},
    )
    problem = assert_problem(response, 422, "validation-error")
    assert problem["errors"][0]["source"] == "header"


async def test_an_invoice_number_over_200_characters_is_422(harness: Harness) -> None:
    order = await harness.seed()
    before = harness.state()
    response = await harness.client.post(
        f"/api/v1/orders/{order.id}/invoices",
        headers=commanding(),
        files={"file": ("invoice.pdf", b"%PDF-1.7 x", "application/pdf")},
        data={"number": "N" * (MAX_INVOICE_NUMBER + 1)},
    )
    problem = assert_problem(response, 422, "validation-error")
    assert problem["errors"][0]["field"] == "number"
    assert harness.state() == before
