"""Spresso order stories end to end, in embedded and in production mode: the demo's
stories checked further, cancellations at every moment, and the refusals the WMS gets.

Each story checks its steps itself (``DemoFailure`` names the step that did not happen);
the tests add what Spresso recorded (calls, parcels, settlement) and the hub's feed."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, Final

import httpx
import pytest

from orderhub.channels.signatures import body_signature
from orderhub.testing.processes import NotYet
from orderhub_spresso import wire
from orderhub_spresso.demo import (
    BEANS_AND_MUG,
    BEANS_PRICE,
    MUG_PRICE,
    TWO_BAGS,
    Demo,
    StoryResult,
    story_cancelled_in_foxtrot,
    story_short_ship,
    story_three_parcels,
)
from orderhub_spresso.plugin import CAPABILITIES

BEANS: Final = "BEANS-1KG"


def types(demo: Demo, order_id: str) -> list[str]:
    return [e["type"] for e in demo.hub.events_for(order_id)]


def writes(demo: Demo, spresso_id: str) -> list[tuple[str, str, str]]:
    """The hub's writes to Spresso for one order, in call order: (fulfilment id, what,
    status code): what is a tracking number (a parcel) or a fulfilment status."""
    fulfilments = demo.spresso.fulfilment_ids(spresso_id)
    found = []
    for call in demo.spresso.control.calls(method="PUT", path="/v1/fulfillments/*"):
        parts = call["path"].split("/")
        if parts[3] not in fulfilments:
            continue
        body = json.loads(call["body"])
        what = body["trackingNumber"] if parts[-1] == "shipments" else body["status"]
        found.append((parts[3], what, str(call["status_code"])))
    return found


def test_two_fulfilments_in_three_parcels_then_in_transit_each_once_then_delivered(
    spresso_demo: Demo,
) -> None:
    demo = spresso_demo
    result = story_three_parcels(demo)
    f1, f2 = demo.spresso.fulfilment_ids(result.spresso_id)

    # in_transit per fulfilment, after that fulfilment's parcels, once; then delivered
    assert writes(demo, result.spresso_id) == [
        (f1, "1ZDEMO0001", "200"),
        (f1, "1ZDEMO0002", "200"),
        (f1, "in_transit", "200"),
        (f2, "JDDEMO0003", "200"),
        (f2, "in_transit", "200"),
        (f1, "delivered", "200"),
        (f2, "delivered", "200"),
    ]
    spresso = demo.spresso.order(result.spresso_id)
    beans, mug = (v["variant"]["id"] for v in spresso["orderVariants"])
    parcels = {
        f: sorted((p["trackingNumber"], p["carrier"]) for p in found)
        for f, found in spresso["_shipments"].items()
    }
    assert parcels == {
        f1: [("1ZDEMO0001", "ups"), ("1ZDEMO0002", "ups")],
        f2: [("JDDEMO0003", "dhl")],
    }
    fulfilled = [
        {v["variant"]: v["fulfilledQuantity"] for v in f["fulfillmentVariants"]}
        for f in spresso["fulfillments"]
    ]
    assert fulfilled == [{beans: 2, mug: 1}, {beans: 1}]  # the same variant in both
    assert spresso["_settlement"] == {"settlements": 2, "charged": 3 * BEANS_PRICE + MUG_PRICE}

    order = demo.hub.order(result.order_id)
    assert (order["status"], order["channel_status"]) == ("delivered", "delivered")
    assert order["order_number"] == str(spresso["orderNo"])
    assert order["shipping_address"]["country_code"] == "US"  # USA, normalised
    assert sorted((ln["sku"], ln["quantity"], ln["delivered"]) for ln in order["lines"]) == [
        (BEANS, 1, 1),
        (BEANS, 2, 2),
        ("MUG-DW", 1, 1),
    ]
    assert order["pending_commands"] == order["failed_commands"] == []
    assert not order["needs_attention"]
    kinds = [e["data"]["kind"] for e in demo.hub.events_for(result.order_id, "command.succeeded")]
    assert kinds == ["ship", "ship", "close_fulfilment", "ship", "close_fulfilment", "deliver"]
    assert Counter(types(demo, result.order_id))["order.received"] == 1


def test_a_short_ship_charges_what_shipped_and_cancels_the_rest(spresso_demo: Demo) -> None:
    demo = spresso_demo
    result = story_short_ship(demo)
    (fid,) = demo.spresso.fulfilment_ids(result.spresso_id)
    assert writes(demo, result.spresso_id) == [
        (fid, "1ZDEMO0010", "200"),
        (fid, "in_transit", "200"),
    ]
    (in_transit,) = demo.spresso.status_calls(fid, "in_transit")
    body = json.loads(in_transit["body"])
    assert [v["fulfilledQuantity"] for v in body["fulfillmentVariants"]] == [1]
    assert demo.spresso.order(result.spresso_id)["_settlement"]["charged"] == BEANS_PRICE
    cancelled = demo.hub.events_for(result.order_id, "order.lines_cancelled")
    assert [(e["data"]["initiator"], e["data"]["reason"]) for e in cancelled] == [
        ("seller", "out_of_stock")
    ]


def test_refused_wms_cancellation_then_foxtrot_cancels_before_shipping(
    spresso_demo: Demo,
) -> None:
    demo = spresso_demo
    result = story_cancelled_in_foxtrot(demo)
    assert writes(demo, result.spresso_id) == []  # nothing was ever sent to Spresso
    order = demo.hub.order(result.order_id)
    resp = demo.hub.post(
        f"/orders/{result.order_id}/shipments",
        {
            "carrier": "UPS",
            "tracking_number": "1ZLATE",
            "items": [{"line_id": order["lines"][0]["id"], "quantity": 1}],
        },
    )
    assert resp.status_code == 409, resp.text  # cancelled: nothing left to ship
    assert writes(demo, result.spresso_id) == []


@pytest.mark.parametrize(
    ("action", "body", "refusal"),
    [
        ("accept", None, "accept"),
        ("reject", {"reason": "out_of_stock"}, "reject"),
        ("cancellations", {"reason": "out_of_stock"}, "cancel"),
    ],
)
def test_wms_accept_reject_and_cancel_are_refused_with_what_to_do(
    spresso_demo: Demo, action: str, body: Any, refusal: str
) -> None:
    demo = spresso_demo
    result = demo.place("R", TWO_BAGS, "an order the WMS tries to change")
    resp = demo.hub.post(f"/orders/{result.order_id}/{action}", body)
    assert resp.status_code == 409, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert CAPABILITIES.refusals[refusal] in resp.json()["detail"]
    order = demo.hub.order(result.order_id)
    assert order["status"] == "ready_to_ship"
    assert order["pending_commands"] == order["failed_commands"] == []
    assert not [t for t in types(demo, result.order_id) if t.startswith("command.")]


def test_a_cancellation_during_the_grace_period_never_reaches_the_hub(
    spresso_demo: Demo,
) -> None:
    demo = spresso_demo
    control = demo.spresso.control
    unpaid = control.place_order({**TWO_BAGS, "paid": False})["id"]
    control.cancel(unpaid)  # in Foxtrot, before it was ever fulfillable
    control.pay(unpaid)
    control.tick(force=True)
    # an order placed after it arrives: the hub has seen everything sent before
    after = demo.place("G", TWO_BAGS, "an order placed after the cancelled one")
    assert after.spresso_id != unpaid
    assert control.webhooks(unpaid) == []
    assert demo.hub.find_order(unpaid) is None


def test_reordered_webhooks_a_cancellation_first_is_never_reopened(spresso_demo: Demo) -> None:
    """Spresso's messages overtake each other: ``order_cancelled`` arrives before the
    order's ``order_fulfillable``; the order is created cancelled and stays so."""
    demo = spresso_demo
    control = demo.spresso.control
    control.hold_webhooks()
    try:
        spresso_id = control.place_order(TWO_BAGS)["id"]
        control.wait_for_fulfillable(spresso_id, timeout=demo.timeout)
        control.cancel(spresso_id)
        held = [r["event"] for r in control.webhooks(spresso_id) if r["held"]]
        assert held == ["order_fulfillable", "order_cancelled"]
    finally:
        control.release_webhooks(reverse=True)  # newest first
    demo.webhook_delivered(spresso_id, "order_cancelled")
    demo.webhook_delivered(spresso_id, "order_fulfillable")
    order = demo.hub_order(spresso_id, status="cancelled")
    # the late order_fulfillable sent again changes nothing either
    (fulfillable,) = [r for r in control.webhooks(spresso_id) if r["event"] == "order_fulfillable"]
    control.redeliver(fulfillable["id"])
    demo.wait(
        "the redelivered order_fulfillable to be acknowledged",
        lambda: _statuses(demo, fulfillable["id"], 2),
    )
    again = demo.hub.order(order["id"])
    assert (again["status"], again["version"]) == ("cancelled", order["version"])
    assert Counter(types(demo, order["id"]))["order.received"] == 1
    assert writes(demo, spresso_id) == []


def _statuses(demo: Demo, record_id: int, count: int) -> list[int]:
    for record in demo.spresso.control.webhooks():
        if record["id"] == record_id and len(record["statuses"]) >= count:
            statuses: list[int] = record["statuses"]
            return statuses
    raise NotYet(f"webhook {record_id} not answered {count} times yet")


def test_a_duplicate_webhook_is_acknowledged_200_and_applied_once(spresso_demo: Demo) -> None:
    demo = spresso_demo
    result = demo.place("D", TWO_BAGS, "an order whose webhook comes twice")
    (record,) = demo.spresso.control.webhooks(result.spresso_id)
    version = demo.hub.order(result.order_id)["version"]
    demo.spresso.control.redeliver(record["id"])
    demo.spresso.control.redeliver(record["id"])
    statuses = demo.wait("both duplicates answered", lambda: _statuses(demo, record["id"], 3))
    assert statuses == [200, 200, 200]  # Spresso stops at 200; a duplicate is 200 too
    order = demo.hub.order(result.order_id)
    assert order["version"] == version
    assert Counter(types(demo, result.order_id))["order.received"] == 1
    same = [
        o for o in demo.hub.orders(channel="spresso") if o["channel_order_id"] == result.spresso_id
    ]
    assert len(same) == 1


def test_the_webhooks_arrive_at_one_url_per_event(spresso_demo: Demo) -> None:
    """``orderhub channels setup`` registered ``/webhooks/spresso/demo/<event>``; the body
    names the event too, and both agree."""
    demo = spresso_demo
    result = story_cancelled_in_foxtrot(demo)
    records = demo.spresso.control.webhooks(result.spresso_id)
    assert sorted((r["event"], r["url"]) for r in records) == [
        ("order_cancelled", demo.stack.webhook_url("order_cancelled")),
        ("order_fulfillable", demo.stack.webhook_url("order_fulfillable")),
    ]


def test_a_5xx_is_retried_and_the_parcel_is_sent_once(spresso_demo: Demo) -> None:
    demo = spresso_demo
    result = demo.place("F", BEANS_AND_MUG, "an order whose first parcel meets a 503")
    demo.spresso.control.add_fault(
        "/v1/fulfillments/*/shipments", method="PUT", status=503, count=1
    )
    receipt = demo.ship(result, 1, [(BEANS, 1)], "JD5XX0001", carrier="DHL")
    event = demo.command_outcome(receipt["command_id"])
    assert event["data"]["attempts"] == 2
    _, f2 = demo.spresso.fulfilment_ids(result.spresso_id)
    assert [(c["status_code"], c["fault"]) for c in demo.spresso.shipment_calls(f2)] == [
        (503, True),
        (200, False),
    ]
    demo.fulfilment(result.spresso_id, 1, "in_transit")
    assert len(demo.spresso.order(result.spresso_id)["_shipments"][f2]) == 1
    # the in_transit waited for the retried parcel: never before that fulfilment's parcels
    (in_transit,) = demo.spresso.status_calls(f2, "in_transit")
    assert in_transit["seq"] > max(c["seq"] for c in demo.spresso.shipment_calls(f2))
    outcomes = [
        e["type"]
        for e in demo.hub.events_for(result.order_id)
        if e["data"].get("command_id") == receipt["command_id"]
    ]
    assert outcomes == ["command.succeeded"]


def _ship_all(demo: Demo, result: StoryResult, fulfilment: int) -> None:
    order = demo.hub.order(result.order_id)
    target = order["fulfilments"][fulfilment]["id"]
    items = [(ln["sku"], ln["quantity"]) for ln in order["lines"] if ln["fulfilment_id"] == target]
    receipt = demo.ship(result, fulfilment, items, f"1ZALL{fulfilment}{result.spresso_id[:6]}")
    demo.command_outcome(receipt["command_id"])
    demo.fulfilment(result.spresso_id, fulfilment, "in_transit")


def test_a_cancellation_after_in_transit_is_recorded_undoes_nothing_and_asks_a_person(
    spresso_demo: Demo,
) -> None:
    demo = spresso_demo
    result = demo.place("X", BEANS_AND_MUG, "an order cancelled after its first in_transit")
    _ship_all(demo, result, 0)
    sent = writes(demo, result.spresso_id)

    demo.spresso.control.cancel(result.spresso_id)  # in Foxtrot: fulfilment 2 only is cancelled
    demo.webhook_delivered(result.spresso_id, "order_cancelled")
    order = demo.hub_order(result.spresso_id, channel_status="cancelled")
    f1 = order["fulfilments"][0]["id"]
    shipped = sorted(
        (ln["shipped"], ln["cancelled"]) for ln in order["lines"] if ln["fulfilment_id"] == f1
    )
    assert shipped == [(1, 0), (2, 0)]  # nothing undone
    rest = [ln for ln in order["lines"] if ln["fulfilment_id"] != f1]
    assert [(ln["shipped"], ln["cancelled"]) for ln in rest] == [(0, 1)]
    assert order["returns"] == []
    assert [a["code"] for a in order["attention"]] == ["cancelled_after_shipment"]
    assert order["needs_attention"]
    assert writes(demo, result.spresso_id) == sent  # nothing sent for it
    assert demo.spresso.order(result.spresso_id)["fulfillments"][0]["status"] == "in_transit"


def test_a_cancellation_after_every_fulfilment_is_in_transit_asks_for_a_person(
    spresso_demo: Demo,
) -> None:
    """Nothing is undone and nothing is sent; the hub records Spresso's status and the
    cancellation as an accepted return, and the order gets an attention reason (Spresso
    declares attention_on_late_cancellation)."""
    demo = spresso_demo
    result = demo.place("Y", BEANS_AND_MUG, "an order cancelled after it all shipped")
    _ship_all(demo, result, 0)
    _ship_all(demo, result, 1)
    sent = writes(demo, result.spresso_id)
    demo.spresso.control.cancel(result.spresso_id)
    demo.webhook_delivered(result.spresso_id, "order_cancelled")
    order = demo.hub_order(result.spresso_id, channel_status="cancelled")
    assert sorted((ln["shipped"], ln["cancelled"]) for ln in order["lines"]) == [
        (1, 0),
        (1, 0),
        (2, 0),
    ]
    assert order["status"] == "shipped"
    assert order["cancellations"] == []
    (recorded,) = order["returns"]
    assert (recorded["initiator"], recorded["state"], recorded["channel_reason"]) == (
        "channel",
        "accepted",
        "order_cancelled",
    )
    assert [(a["code"], a["ref"]) for a in order["attention"]] == [
        ("cancelled_after_shipment", recorded["channel_return_id"])
    ]
    assert writes(demo, result.spresso_id) == sent
    assert [f["status"] for f in demo.spresso.order(result.spresso_id)["fulfillments"]] == [
        "in_transit",
        "in_transit",
    ]


def test_a_body_that_names_no_event_is_read_by_the_url_it_came_to(spresso_demo: Demo) -> None:
    """A Spresso whose body does not say which event it is: the URL's topic decides.
    The order's own status does not look cancelled, yet at ``.../order_cancelled`` the
    message cancels it; at the URL without a topic the same body is read as the
    ``order_fulfillable`` it first was (the natural dedupe key names the event)."""
    demo = spresso_demo
    result = demo.place("T", TWO_BAGS, "an order cancelled by a body without an event")
    (record,) = demo.spresso.control.webhooks(result.spresso_id)
    document = json.loads(record["body"])
    del document["event"]
    assert document["status"] != "cancelled"
    raw = json.dumps(document).encode()
    headers = {
        "Content-Type": "application/json",
        wire.SIGNATURE_HEADER: body_signature(demo.stack.client_secret, raw),
    }
    answer = httpx.post(
        demo.stack.webhook_url("order_cancelled"), content=raw, headers=headers, timeout=10
    )
    assert (answer.status_code, answer.json()["duplicate"]) == (200, False), answer.text
    order = demo.hub_order(result.spresso_id, status="cancelled")
    (cancellation,) = order["cancellations"]
    assert (cancellation["initiator"], cancellation["channel_reason"]) == (
        "channel",
        "order_cancelled",
    )

    # at the URL without a topic the same body is an order_fulfillable: the very message
    # Spresso sent first (the natural key names the event), not applied again
    plain = httpx.post(demo.stack.webhook_url(), content=raw, headers=headers, timeout=10)
    assert (plain.status_code, plain.json()["duplicate"]) == (200, True), plain.text
    first = httpx.post(
        demo.stack.webhook_url("order_fulfillable"), content=raw, headers=headers, timeout=10
    )
    assert first.json()["message_id"] == plain.json()["message_id"]
    again = httpx.post(
        demo.stack.webhook_url("order_cancelled"), content=raw, headers=headers, timeout=10
    )
    assert (again.status_code, again.json()["duplicate"]) == (200, True), again.text
    assert Counter(types(demo, order["id"]))["order.received"] == 1
