"""Octopia orders through the hub as real processes, in embedded and production mode: the
demo's two stories, a customer's request refused by shipping on Cdiscount, the refusals
made before anything is sent, lines the marketplace ships itself, and invoices decided by
Octopia's asynchronous import report.

Each story checks every step itself (it raises ``DemoFailure`` naming the step that did
not happen); the tests add what the stories leave to the reader: the feed of each order
and the calls the hub made to Octopia (the simulator's call log)."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from typing import Any, Final

from orderhub_octopia.demo import (
    Demo,
    StoryResult,
    seller_items,
    story_customer_cancels,
    story_delivered,
)
from orderhub_octopia.demo_support import NotYet

TWO_LINES: Final[dict[str, Any]] = {
    "sales_channel": "CDISFR",
    "lines": [{"title": "Kettle", "sku": "KETTLE-E2E"}, {"title": "Toaster", "sku": "TOAST-E2E"}],
}


def types(demo: Demo, order_id: str) -> list[str]:
    return [e["type"] for e in demo.hub.events_for(order_id)]


def succeeded(demo: Demo, order_id: str) -> list[str]:
    return [e["data"]["kind"] for e in demo.hub.events_for(order_id, "command.succeeded")]


def ready_order(demo: Demo, spec: dict[str, Any]) -> StoryResult:
    """An order polled in, accepted by the WMS and paid: ready_to_ship."""
    result = demo.receive("E", spec, "an e2e order")
    demo.accept_and_pay(result)
    return result


def test_a_cdiscount_order_is_polled_accepted_shipped_and_delivered(
    octopia_demo: Demo,
) -> None:
    demo = octopia_demo
    result = story_delivered(demo)

    order = demo.hub.order(result.order_id)
    assert (order["status"], order["channel_status"]) == ("delivered", "Delivered")
    assert order["pending_commands"] == order["failed_commands"] == []
    assert order["extras"]["sales_channel"] == "CDISFR"
    assert order["ship_by"] is not None
    assert all(line["delivered"] == line["quantity"] for line in order["lines"])
    (shipment,) = order["shipments"]
    assert shipment["tracking_number"] == f"6A{result.octopia_id}FR"
    assert shipment["carrier"] == "Colissimo"

    events = types(demo, result.order_id)
    counts = Counter(events)
    assert counts["order.received"] == counts["order.ready_to_ship"] == 1
    assert counts["order.shipped"] == counts["order.delivered"] == 1
    assert counts["command.failed"] == 0
    assert events.index("order.ready_to_ship") < events.index("order.shipped")
    assert events.index("order.shipped") < events.index("order.delivered")
    assert succeeded(demo, result.order_id) == ["accept", "ship"]
    # delivery is the marketplace's word: the hub sent Octopia nothing for it
    assert demo.writes(result.octopia_id) == [
        f"POST /orders/{result.octopia_id}/approval-status 204",
        f"POST /orders/{result.octopia_id}/shipments 201",
    ]


def test_a_customer_request_accepted_cancels_the_order(octopia_demo: Demo) -> None:
    demo = octopia_demo
    result = story_customer_cancels(demo)

    order = demo.hub.order(result.order_id)
    assert (order["status"], order["channel_status"]) == ("cancelled", "Cancelled")
    assert not order["cancellation_requested"]
    assert all(line["cancelled"] == line["quantity"] for line in order["lines"])
    counts = Counter(types(demo, result.order_id))
    assert counts["order.cancellation_requested"] == counts["order.cancelled"] == 1
    assert counts["order.shipped"] == 0
    cancelled = demo.hub.events_for(result.order_id, "order.cancelled")
    assert [e["data"]["initiator"] for e in cancelled] == ["customer"]
    assert succeeded(demo, result.order_id) == ["accept", "decide_cancellation"]
    # accepting the request is a cancellation of the whole order (Cdiscount) at Octopia
    assert demo.writes(result.octopia_id) == [
        f"POST /orders/{result.octopia_id}/approval-status 204",
        "POST /order-cancellation-requests 201",
    ]


def test_a_customer_request_refused_by_shipping_on_cdiscount(octopia_demo: Demo) -> None:
    demo = octopia_demo
    result = ready_order(demo, TWO_LINES)
    (request,) = demo.octopia.move(result.octopia_id, "cancel-request")  # one, whole order

    def open_request(order: dict[str, Any]) -> str | None:
        return None if order["cancellation_requested"] else "no open request yet"

    order = demo.hub_order(result.octopia_id, status="ready_to_ship", check=open_request)
    (asked,) = order["cancellations"]
    assert (asked["initiator"], asked["state"]) == ("customer", "requested")
    assert asked["channel_cancellation_id"] == request["cancellationRequestId"]

    receipt = demo.hub.command(
        result.order_id, "cancellations", {"decision": "refuse", "cancellation_id": asked["id"]}
    )
    demo.command_outcome(receipt["command_id"])
    before = demo.writes(result.octopia_id)
    assert before == [f"POST /orders/{result.octopia_id}/approval-status 204"]  # nothing sent

    # on Cdiscount the parcel is the refusal
    receipt = demo.hub.command(
        result.order_id,
        "shipments",
        {"carrier": "UPS", "tracking_number": "1ZE2EREFUSE", "items": seller_items(order)},
    )
    demo.command_outcome(receipt["command_id"])
    shipped = demo.octopia_order(result.octopia_id, "Shipped")
    assert [d["status"] for d in shipped["cancellationDetails"]] == ["Rejected"]

    def refused(order: dict[str, Any]) -> str | None:
        states = [c["state"] for c in order["cancellations"]]
        if order["cancellation_requested"] or states != ["refused"]:
            return f"cancellation_requested {order['cancellation_requested']}, states {states}"
        return None

    order = demo.hub_order(
        result.octopia_id, status="shipped", channel_status="Shipped", check=refused
    )
    assert all(line["cancelled"] == 0 for line in order["lines"])
    assert demo.writes(result.octopia_id) == [
        *before,
        f"POST /orders/{result.octopia_id}/shipments 201",
    ]
    counts = Counter(types(demo, result.order_id))
    assert counts["order.cancelled"] == counts["command.failed"] == 0
    assert counts["order.shipped"] == 1


def test_a_reason_code_and_an_unknown_carrier_are_refused_with_nothing_sent(
    octopia_demo: Demo,
) -> None:
    demo = octopia_demo
    result = demo.receive("E", TWO_LINES, "an order for refusals")
    receipt = demo.hub.command(result.order_id, "accept")
    demo.command_outcome(receipt["command_id"])
    demo.hub_order(result.octopia_id, status="accepted", channel_status="Accepted")
    approval = [f"POST /orders/{result.octopia_id}/approval-status 204"]

    # the reason code "damaged" is for shipped or delivered orders only (the seed's table)
    detail = demo.refused(
        result.order_id,
        "cancellations",
        {"reason": "damaged"},
        status=409,
        rule="cancellation-reason-not-allowed-in-status",
    )
    for word in ("damaged", "shipped", "delivered"):
        assert word in detail, detail

    demo.octopia.move(result.octopia_id, "pay")
    order = demo.hub_order(result.octopia_id, status="ready_to_ship")

    # The API process reads Octopia's carrier list on its first shipment, in the
    # background (until then a carrier is checked when the command is sent). A parcel
    # number with a space is refused either way: wait for the carrier check to come first.
    def unknown_carrier() -> str:
        resp = demo.hub.post(
            f"/orders/{result.order_id}/shipments",
            {"carrier": "Pigeon", "tracking_number": "NOT VALID", "items": seller_items(order)},
        )
        rule = resp.json().get("rule")
        if (resp.status_code, rule) == (422, "octopia-tracking-number"):
            raise NotYet("the carrier list is not read yet")
        assert (resp.status_code, rule) == (422, "unknown-carrier"), resp.text
        detail: str = resp.json()["detail"]
        return detail

    detail = demo.wait("the hub to check carriers against Octopia's list", unknown_carrier)
    for word in ("Colissimo", "Chronopost"):
        assert word in detail, detail

    detail = demo.refused(
        result.order_id,
        "shipments",
        {"carrier": "Pigeon", "tracking_number": "PIGEON2", "items": seller_items(order)},
        status=422,
        rule="unknown-carrier",
    )
    for word in ("Pigeon", "UPS"):
        assert word in detail, detail
    # Cdiscount: one parcel per complete order, so one line alone is refused too
    demo.refused(
        result.order_id,
        "shipments",
        {"carrier": "UPS", "tracking_number": "1ZHALF", "items": seller_items(order)[:1]},
        status=409,
        rule="shipment-whole-order-only",
    )

    order = demo.hub.order(result.order_id)
    assert order["pending_commands"] == order["failed_commands"] == []
    assert succeeded(demo, result.order_id) == ["accept"]
    assert demo.writes(result.octopia_id) == approval
    assert demo.octopia.order(result.octopia_id)["status"] == "InPreparation"
    # the same order, shipped right, goes through: a carrier code names its carrier
    receipt = demo.hub.command(
        result.order_id,
        "shipments",
        {"carrier": "ups", "tracking_number": "1ZWHOLE", "items": seller_items(order)},
    )
    demo.command_outcome(receipt["command_id"])
    shipped = demo.octopia_order(result.octopia_id, "Shipped")
    assert {p["carrierName"] for ln in shipped["lines"] for p in ln["parcels"]} == {"UPS"}


def test_a_fulfillment_line_is_never_offered_to_the_wms(octopia_demo: Demo) -> None:
    demo = octopia_demo
    mixed = ready_order(
        demo,
        {
            "sales_channel": "OCTOBE",
            "lines": [
                {"title": "Desk lamp", "sku": "LAMP-E2E"},
                {"title": "Bulbs", "sku": "BULB-E2E", "supply_mode": "Fulfillment"},
            ],
        },
    )
    order = demo.hub.order(mixed.order_id)
    assert order["fulfilled_by"] == "mixed"
    by_mode = {line["extras"]["supply_mode"]: line for line in order["lines"]}
    theirs, ours = by_mode["Fulfillment"], by_mode["Seller"]
    fulfilments = {f["id"]: f["fulfilled_by"] for f in order["fulfilments"]}
    assert fulfilments[theirs["fulfilment_id"]] == "channel"
    assert fulfilments[ours["fulfilment_id"]] == "seller"
    assert seller_items(order) == [{"line_id": ours["id"], "quantity": 1}]

    demo.refused(
        mixed.order_id,
        "shipments",
        {
            "carrier": "UPS",
            "tracking_number": "1ZTHEIRS",
            "items": [{"line_id": theirs["id"], "quantity": 1}],
        },
        status=409,
        rule="channel-fulfilled-line",
    )
    demo.refused(
        mixed.order_id,
        "cancellations",
        {"reason": "seller_refusal"},
        status=409,
        rule="cancellation-of-channel-fulfilled-order",
    )
    assert demo.writes(mixed.octopia_id) == [f"POST /orders/{mixed.octopia_id}/approval-status 204"]

    # the marketplace's logistics ship their line; the WMS ships its own
    demo.octopia.move(mixed.octopia_id, "fulfil")

    def channel_parcel(order: dict[str, Any]) -> str | None:
        numbers = [s["tracking_number"] for s in order["shipments"]]
        return None if numbers == [f"FUL{mixed.octopia_id}"] else f"shipments {numbers}"

    order = demo.hub_order(mixed.octopia_id, check=channel_parcel)
    assert order["status"] == "partially_shipped"
    receipt = demo.hub.command(
        mixed.order_id,
        "shipments",
        {"carrier": "UPS", "tracking_number": "1ZOURS", "items": seller_items(order)},
    )
    demo.command_outcome(receipt["command_id"])
    demo.octopia_order(mixed.octopia_id, "Shipped")
    demo.hub_order(mixed.octopia_id, status="shipped", channel_status="Shipped")
    (call,) = [
        c
        for c in demo.octopia.calls(method="POST")
        if c["path"].endswith("/shipments") and mixed.octopia_id in c["path"]
    ]
    assert '"orderLineIds":["L1"]' in call["body"].replace(" ", ""), call["body"]

    # an order the marketplace ships entirely: never ready for the warehouse
    theirs_only = demo.place_order(
        {
            "sales_channel": "AUTOFR",
            "lines": [{"title": "Printer ink", "sku": "INK-E2E", "supply_mode": "Xdock"}],
        }
    )
    demo.octopia.move(theirs_only, "pay")
    order = demo.hub_order(theirs_only, channel_status="InPreparation")
    assert order["fulfilled_by"] == "channel"
    demo.octopia.move(theirs_only, "fulfil")
    order = demo.hub_order(theirs_only, status="shipped", channel_status="Shipped")
    assert [s["tracking_number"] for s in order["shipments"]] == [f"FUL{theirs_only}"]
    assert "order.ready_to_ship" not in types(demo, order["id"])

    def listed(fulfilled_by: str) -> set[str]:
        return {o["id"] for o in demo.hub.orders(channel="octopia", fulfilled_by=fulfilled_by)}

    for_the_wms = listed("seller") | listed("mixed")
    assert order["id"] not in for_the_wms
    assert mixed.order_id in for_the_wms
    assert order["id"] in listed("channel")
    assert demo.writes(theirs_only) == []


def upload_invoice(demo: Demo, order_id: str, number: str, content: bytes) -> dict[str, Any]:
    resp = demo.hub.http.post(
        f"/orders/{order_id}/invoices",
        files={"file": (f"{number}.pdf", content, "application/pdf")},
        data={"number": number},
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    assert resp.status_code == 202, resp.text
    receipt: dict[str, Any] = resp.json()
    demo.hub.command_orders[receipt["command_id"]] = order_id
    return receipt


def test_invoices_are_decided_by_octopias_asynchronous_report(octopia_demo: Demo) -> None:
    demo = octopia_demo
    good = ready_order(demo, {"sales_channel": "CDISFR", "lines": [{"sku": "INV-OK-E2E"}]})
    bad = ready_order(demo, {"sales_channel": "CDISFR", "lines": [{"sku": "INV-KO-E2E"}]})
    for result, content in ((good, b"%PDF-1.4 invoice"), (bad, b"%PDF-1.4 REJECT")):
        receipt = upload_invoice(demo, result.order_id, f"F-{result.octopia_id}", content)
        demo.command_outcome(receipt["command_id"])

    def decided(order_id: str, type_: str) -> dict[str, Any]:
        def probe() -> dict[str, Any]:
            found = demo.hub.events_for(order_id, type_)
            if not found:
                raise NotYet(f"invoices: {demo.hub.order(order_id).get('invoices')}")
            return found[0]

        return demo.wait(f"{type_} for order {order_id}", probe)

    decided(good.order_id, "invoice.accepted")
    rejected = decided(bad.order_id, "invoice.rejected")
    assert "amounts do not match" in json.dumps(rejected["data"]), rejected
    assert demo.hub.events_for(good.order_id, "invoice.rejected") == []
    assert demo.hub.events_for(bad.order_id, "invoice.accepted") == []
    # the import was read until final: first Pending, then the verdict
    for result in (good, bad):
        uploads = [
            c
            for c in demo.octopia.calls(method="POST", path="/invoice-documents")
            if result.octopia_id in c["path"]
        ]
        assert [c["status_code"] for c in uploads] == [201]
    reports = demo.octopia.calls(method="GET", path="/order-invoice-imports/")
    assert len(reports) >= 4, reports  # two reads per import at least
