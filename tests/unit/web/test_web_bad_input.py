"""Bad input from anyone is a clear 4xx problem, never a 500, and changes nothing.

Each test here is the regression test of a bug found by sending such input: unparseable
webhook signature headers, cursors past PostgreSQL's BIGINT, bodies decoded laxly
(``"1"`` taken for ``1``), NUL characters that PostgreSQL refuses in text, datetimes with
no UTC equivalent."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import msgspec
import pytest

from .support import Harness, assert_problem, auth, commanding

ORDER = json.dumps({"id": "CH-77", "lines": [{"id": "a", "quantity": 1}]}).encode()
MAX_BIGINT = 2**63 - 1


def assert_nothing_stored(harness: Harness) -> None:
    assert harness.db.inbox == {}
    assert harness.queue.messages == []


# --- webhook signature headers -------------------------------------------------------------


@pytest.mark.parametrize(
    "timestamp",
    [
        "¹²³".encode("latin-1"),  # str.isdigit() is true, int() refuses it
        b"9" * 5000,  # past int()'s 4300-digit limit
        "١٧٦٧٢٦٨٨٠٠".encode(),  # Arabic-Indic digits, read as latin-1 text
        b"1" * 13,
        b"+1767268800",
        b"1_767_268_800",
        b"0x69567d40",
    ],
)
async def test_a_timestamp_that_is_not_ascii_unix_seconds_is_401(
    harness: Harness, raw_client: httpx.AsyncClient, timestamp: bytes
) -> None:
    headers: dict[str, Any] = {**harness.signed(ORDER), "webhook-timestamp": timestamp}
    response = await raw_client.post("/webhooks/stub/main", content=ORDER, headers=headers)
    body = assert_problem(response, 401, "unauthorized")
    assert "webhook-timestamp must be Unix seconds" in body["detail"]
    assert_nothing_stored(harness)


@pytest.mark.parametrize(
    "signature",
    [
        b"v1,\xe9\xe9\xe9\xe9",  # not ASCII: base64 raises ValueError, not binascii.Error
        b"v1,!!!!",
        b"v1,AAA",  # bad padding
        b"v1,",
        b"v1",
        b",,,",
        b"v1,\xff" + b"A" * 40,
    ],
)
async def test_a_signature_that_is_not_base64_is_401(
    harness: Harness, raw_client: httpx.AsyncClient, signature: bytes
) -> None:
    headers: dict[str, Any] = {**harness.signed(ORDER), "webhook-signature": signature}
    response = await raw_client.post("/webhooks/stub/main", content=ORDER, headers=headers)
    body = assert_problem(response, 401, "unauthorized")
    assert "no v1 signature" in body["detail"]
    assert_nothing_stored(harness)


async def test_a_webhook_id_in_latin1_is_401(
    harness: Harness, raw_client: httpx.AsyncClient
) -> None:
    headers: dict[str, Any] = {**harness.signed(ORDER), "webhook-id": b"msg-\xe9\xff"}
    response = await raw_client.post("/webhooks/stub/main", content=ORDER, headers=headers)
    body = assert_problem(response, 401, "unauthorized")
    assert "no webhook signature matches" in body["detail"]
    assert_nothing_stored(harness)


# --- the feed cursor -----------------------------------------------------------------------


@pytest.mark.parametrize("after", [MAX_BIGINT + 1, 2**64, 10**40])
async def test_a_feed_cursor_past_bigint_is_422_naming_after(harness: Harness, after: int) -> None:
    response = await harness.client.get(f"/api/v1/feed?after={after}", headers=auth("reader"))
    body = assert_problem(response, 422, "validation-error")
    assert [(e["field"], e["source"]) for e in body["errors"]] == [("after", "query")]


async def test_the_largest_feed_cursor_is_fine(harness: Harness) -> None:
    response = await harness.client.get(f"/api/v1/feed?after={MAX_BIGINT}", headers=auth("reader"))
    assert response.status_code == 200, response.text
    assert response.json() == {"events": [], "next_cursor": MAX_BIGINT}


# --- strict bodies -------------------------------------------------------------------------


async def _accepted(harness: Harness, order_id: str) -> None:
    response = await harness.client.post(
        f"/api/v1/orders/{order_id}/accept", json={}, headers=commanding()
    )
    assert response.status_code == 202, response.text


def _payload(command: str, line_id: str, quantity: Any) -> dict[str, Any]:
    lines = [{"line_id": line_id, "quantity": quantity}]
    if command == "accept":
        return {"lines": lines}
    if command == "reject":
        return {"reason": "out_of_stock", "lines": lines}
    if command == "cancellations":
        return {"reason": "out_of_stock", "lines": lines}
    return {"carrier": "DHL", "tracking_number": "T1", "items": lines}


@pytest.mark.parametrize("command", ["accept", "reject", "shipments", "cancellations"])
@pytest.mark.parametrize("quantity", ["1", 1.0, True, "01", [1]])
async def test_a_quantity_that_is_not_a_json_integer_is_422_and_changes_nothing(
    harness: Harness, command: str, quantity: Any
) -> None:
    order = await harness.seed()
    if command == "shipments":
        await _accepted(harness, order.id)
        harness.queue.commands.clear()
    before = harness.state()
    response = await harness.client.post(
        f"/api/v1/orders/{order.id}/{command}",
        json=_payload(command, order.lines[0].id, quantity),
        headers=commanding(),
    )
    body = assert_problem(response, 422, "validation-error")
    key = "items" if command == "shipments" else "lines"
    assert [(e["field"], e["source"]) for e in body["errors"]] == [(f"{key}[0].quantity", "body")]
    assert harness.state() == before
    # and the same request with an integer goes through: only the type was wrong
    ok = await harness.client.post(
        f"/api/v1/orders/{order.id}/{command}",
        json=_payload(command, order.lines[0].id, 1),
        headers=commanding(),
    )
    assert ok.status_code == 202, ok.text


@pytest.mark.parametrize("quantity", [2**31, 2**63, 10**30])
async def test_a_quantity_past_the_schema_bound_is_a_validation_error(
    harness: Harness, quantity: int
) -> None:
    order = await harness.seed()
    before = harness.state()
    response = await harness.client.post(
        f"/api/v1/orders/{order.id}/accept",
        json={"lines": [{"line_id": order.lines[0].id, "quantity": quantity}]},
        headers=commanding(),
    )
    body = assert_problem(response, 422, "validation-error")
    assert [e["field"] for e in body["errors"]] == ["lines[0].quantity"]
    assert harness.state() == before


@pytest.mark.parametrize(
    ("command", "payload", "field"),
    [
        ("shipments", {"carrier": "DHL", "tracking_number": "T1", "final": "true"}, "final"),
        ("shipments", {"carrier": 7, "tracking_number": "T1"}, "carrier"),
        ("deliveries", {"fulfilment_id": 1}, "fulfilment_id"),
        ("cancellations", {"decision": "accept", "cancellation_id": 5}, "cancellation_id"),
    ],
)
async def test_no_other_type_is_coerced_either(
    harness: Harness, command: str, payload: dict[str, Any], field: str
) -> None:
    order = await harness.seed()
    await _accepted(harness, order.id)
    if command == "shipments":
        payload = {**payload, "items": [{"line_id": order.lines[0].id, "quantity": 1}]}
    before = harness.state()
    response = await harness.client.post(
        f"/api/v1/orders/{order.id}/{command}", json=payload, headers=commanding()
    )
    body = assert_problem(response, 422, "validation-error")
    assert [e["field"] for e in body["errors"]] == [field]
    assert harness.state() == before


# --- NUL characters ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "field", "source"),
    [
        ("/api/v1/orders/%00", "order_id", "path"),
        ("/api/v1/orders/a%00b", "order_id", "path"),
        ("/api/v1/orders?channel=%00", "channel", "query"),
        ("/api/v1/orders?account=main%00", "account", "query"),
        ("/api/v1/orders?limit=5&status=%00", "status", "query"),
    ],
)
async def test_a_nul_in_a_path_or_query_parameter_is_422(
    harness: Harness, path: str, field: str, source: str
) -> None:
    response = await harness.client.get(path, headers=auth("reader"))
    body = assert_problem(response, 422, "validation-error")
    assert [(e["field"], e["source"]) for e in body["errors"]] == [(field, source)]


async def test_a_nul_in_a_command_path_or_header_changes_nothing(
    harness: Harness, raw_client: httpx.AsyncClient
) -> None:
    order = await harness.seed()
    before = harness.state()
    writer = auth("writer")
    for path, headers in [
        ("/api/v1/orders/%00/accept", writer),
        ("/api/v1/ops/commands/%00/retry", auth("operator")),
        (f"/api/v1/orders/{order.id}/accept", {**writer, "Idempotency-Key": "k\x00"}),
    ]:
        response = await raw_client.post(path, headers=headers)
        assert_problem(response, 422, "validation-error")
    assert harness.state() == before


async def test_a_nul_in_a_body_string_is_422_naming_the_field(harness: Harness) -> None:
    order = await harness.seed()
    await _accepted(harness, order.id)
    before = harness.state()
    response = await harness.client.post(
        f"/api/v1/orders/{order.id}/shipments",
        json={
            "carrier": "DHL",
            "tracking_number": "T\x001",
            "items": [{"line_id": order.lines[0].id, "quantity": 1}],
        },
        headers=commanding(),
    )
    body = assert_problem(response, 422, "validation-error")
    assert [(e["field"], e["source"]) for e in body["errors"]] == [("tracking_number", "body")]
    assert harness.state() == before


async def test_a_nul_in_a_webhook_path_or_header_stores_nothing(
    harness: Harness, raw_client: httpx.AsyncClient
) -> None:
    signed = harness.signed(ORDER)
    for path, headers in [
        ("/webhooks/stub%00/main", signed),
        ("/webhooks/stub/main?token=%00", signed),
        ("/webhooks/stub/main", {**signed, "X-Trace": "a\x00b"}),
    ]:
        response = await raw_client.post(path, content=ORDER, headers=headers)
        assert_problem(response, 422, "validation-error")
    assert_nothing_stored(harness)


# --- datetimes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "updated_after=9999-12-31T23:59:59-14:00",  # past year 9999 in UTC
        "ship_by_before=0001-01-01T00:00:00%2B14:00",  # before year 1 in UTC
        "updated_after=0000-01-01T00:00:00Z",
        "updated_after=10000-01-01T00:00:00Z",
        "ship_by_before=2026-01-01T00:00:00",  # naive
        "updated_after=2026-02-30T00:00:00Z",
    ],
)
async def test_a_datetime_with_no_utc_equivalent_is_422(harness: Harness, query: str) -> None:
    response = await harness.client.get(f"/api/v1/orders?{query}", headers=auth("reader"))
    body = assert_problem(response, 422, "validation-error")
    assert [(e["field"], e["source"]) for e in body["errors"]] == [(query.split("=")[0], "query")]


@pytest.mark.parametrize(
    "forged",
    [
        ["9999-12-31T23:59:59-14:00", "id-1"],
        ["2026-01-01T00:00:00+00:00", "id\x00"],
        ["seq", MAX_BIGINT + 1],
        ["seq", -1],
        ["seq", "1"],
        ["seq\x00", 1],
    ],
)
async def test_a_forged_cursor_the_database_would_refuse_is_422(
    harness: Harness, forged: list[Any]
) -> None:
    raw = msgspec.json.encode(forged)
    cursor = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    response = await harness.client.get(f"/api/v1/orders?cursor={cursor}", headers=auth("reader"))
    body = assert_problem(response, 422, "invalid-cursor")
    assert body["errors"][0]["field"] == "cursor"
