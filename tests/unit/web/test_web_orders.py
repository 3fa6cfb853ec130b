from __future__ import annotations

from typing import Any

from orderhub.application.ports import CommandState

from .support import Harness, auth, commanding

ORDER_FIELDS = {
    "capabilities",
    "invoices",
    "needs_attention",
    "fulfilled_by",
    "attention",
    "last_seq",
    "id",
    "channel",
    "account",
    "channel_order_id",
    "order_number",
    "seller_reference",
    "status",
    "channel_status",
    "cancellation_requested",
    "customer",
    "shipping_address",
    "billing_address",
    "currency",
    "placed_at",
    "ship_by",
    "lines",
    "fulfilments",
    "shipments",
    "cancellations",
    "returns",
    "extras",
    "version",
    "created_at",
    "updated_at",
}
LINE_FIELDS = {
    "id",
    "channel_line_id",
    "sku",
    "title",
    "quantity",
    "accepted",
    "rejected",
    "shipped",
    "delivered",
    "cancelled",
    "unit_price",
    "parent_line_id",
    "fulfilment_id",
    "requires_serial_number",
    "units",
    "extras",
}


async def get(harness: Harness, path: str) -> Any:
    response = await harness.client.get(path, headers=auth("reader"))
    assert response.status_code == 200, response.text
    return response.json()


async def test_the_whole_order(harness: Harness) -> None:
    order = await harness.seed(
        order_number="N-42",
        ship_by="2026-01-03T18:00:00+00:00",
        cancellation={"id": "c-1"},
        lines=[
            {"id": "bundle", "quantity": 1, "price": 5000},
            {"id": "a", "quantity": 1, "parent": "bundle", "serial": True, "units": ["u1"]},
            {"id": "b", "quantity": 2, "parent": "bundle"},
        ],
    )
    leaf = next(line for line in order.lines if line.channel_line_id == "a")
    await harness.client.post(
        f"/api/v1/orders/{order.id}/accept",
        json={"lines": [{"line_id": leaf.id, "quantity": 1}]},
        headers=commanding(),
    )
    failed = harness.db.commands[next(iter(harness.db.commands))]
    failed.state, failed.last_error, failed.attempts = CommandState.FAILED, "HTTP 400: no", 1
    await harness.client.post(
        f"/api/v1/orders/{order.id}/reject",
        json={"reason": "out_of_stock", "lines": [{"line_id": order.lines[2].id, "quantity": 1}]},
        headers=commanding(),
    )

    body = await get(harness, f"/api/v1/orders/{order.id}")

    assert set(body) == ORDER_FIELDS | {"pending_commands", "failed_commands"}
    assert body["id"] == order.id
    assert (body["channel"], body["account"]) == ("stub", "main")
    assert body["channel_order_id"] == order.channel_order_id
    assert body["order_number"] == "N-42"
    assert body["status"] == "awaiting_acceptance"
    assert body["channel_status"] == "created"
    assert body["cancellation_requested"] is True
    assert body["currency"] == "EUR"
    assert body["ship_by"] == "2026-01-03T18:00:00Z"
    assert body["version"] == 3
    lines = {line["channel_line_id"]: line for line in body["lines"]}
    assert all(set(line) == LINE_FIELDS for line in body["lines"])
    assert lines["bundle"]["unit_price"] == {
        "gross": {"amount": 5000, "currency": "EUR"},
        "net": None,
        "tax_rate": None,
    }
    assert lines["a"]["parent_line_id"] == lines["bundle"]["id"]
    assert lines["a"]["requires_serial_number"] is True
    assert lines["a"]["units"] == [
        {"channel_unit_id": "u1", "serial_number": None, "shipped": False}
    ]
    assert {k: lines["a"][k] for k in ("quantity", "accepted", "rejected", "shipped")} == {
        "quantity": 1,
        "accepted": 1,
        "rejected": 0,
        "shipped": 0,
    }
    assert (lines["b"]["rejected"], lines["b"]["delivered"], lines["b"]["cancelled"]) == (1, 0, 0)
    assert body["fulfilments"][0]["status"] == "open"
    assert body["fulfilments"][0]["fulfilled_by"] == "seller"
    assert body["cancellations"][0]["state"] == "requested"
    assert body["cancellations"][0]["channel_cancellation_id"] == "c-1"
    assert body["shipments"] == body["returns"] == []
    assert [c["kind"] for c in body["pending_commands"]] == ["reject"]
    assert body["failed_commands"] == [
        {
            "id": failed.id,
            "seq": 1,
            "kind": "accept",
            "state": "failed",
            "attempts": 1,
            "last_error": "HTTP 400: no",
            "next_attempt_at": "2026-01-01T12:00:00Z",
            "created_at": "2026-01-01T12:00:00Z",
            "finished_at": None,
            "held_by": None,
        }
    ]
    assert (body["needs_attention"], body["attention"]) == (False, [])
    assert body["fulfilled_by"] == "seller"
    assert body["capabilities"]["acceptance"] == "line"  # this order's rules, stored with it
    assert body["last_seq"] == max(e.seq for e in harness.db.feed if e.order_id == order.id)


async def test_shipments_on_the_order(harness: Harness) -> None:
    order = await harness.seed(lines=[{"id": "s", "quantity": 1, "serial": True}])
    await harness.client.post(f"/api/v1/orders/{order.id}/accept", headers=commanding())
    await harness.client.post(
        f"/api/v1/orders/{order.id}/shipments",
        json={
            "carrier": "DHL",
            "tracking_number": "T1",
            "items": [{"line_id": order.lines[0].id, "quantity": 1, "serial_numbers": ["SN"]}],
        },
        headers=commanding(),
    )
    body = await get(harness, f"/api/v1/orders/{order.id}")
    assert body["status"] == "shipped"
    (shipment,) = body["shipments"]
    assert shipment["carrier"] == "DHL"
    assert shipment["items"] == [
        {"line_id": order.lines[0].id, "quantity": 1, "serial_numbers": ["SN"]}
    ]
    assert body["fulfilments"][0]["status"] == "shipped"


async def seed_many(harness: Harness) -> list[str]:
    ids = []
    for n in range(5):
        order = await harness.seed(
            account="plain" if n == 4 else "main",
            ship_by=f"2026-01-0{n + 2}T00:00:00+00:00",
        )
        ids.append(order.id)
        harness.clock.advance(60)
    return ids


async def test_orders_come_in_update_order_page_by_page(harness: Harness) -> None:
    ids = await seed_many(harness)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        query = f"/api/v1/orders?limit=2{f'&cursor={cursor}' if cursor else ''}"
        page = await get(harness, query)
        pages += 1
        seen += [o["id"] for o in page["orders"]]
        assert set(page["orders"][0]) == ORDER_FIELDS
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids
    assert pages == 3


async def test_the_last_full_page_says_there_is_no_more(harness: Harness) -> None:
    ids = await seed_many(harness)
    page = await get(harness, "/api/v1/orders?limit=5")
    assert [o["id"] for o in page["orders"]] == ids
    assert page["next_cursor"] is None
    assert (await get(harness, "/api/v1/orders"))["next_cursor"] is None


async def test_filters(harness: Harness) -> None:
    ids = await seed_many(harness)
    await harness.client.post(f"/api/v1/orders/{ids[0]}/accept", headers=commanding())

    async def found(query: str) -> list[str]:
        return [o["id"] for o in (await get(harness, f"/api/v1/orders?{query}"))["orders"]]

    assert await found("status=awaiting_acceptance") == ids[1:4]
    assert await found("status=ready_to_ship") == [ids[4], ids[0]]
    assert await found("channel=stub&account=plain") == [ids[4]]
    assert await found("channel=other") == []
    assert await found("updated_after=2026-01-01T12:02:30Z") == [ids[3], ids[4], ids[0]]
    assert await found("updated_after=2026-01-01T13:02:30%2B01:00") == [ids[3], ids[4], ids[0]]
    # ids[0] was accepted last: it is the most recently updated
    assert await found("ship_by_before=2026-01-04T00:00:00Z") == [ids[1], ids[0]]
    assert await found("ship_by_before=2026-01-04T00:00:00Z&status=awaiting_acceptance") == [ids[1]]
