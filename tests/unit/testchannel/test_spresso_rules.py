"""The test channel's ``spresso`` profile: Spresso's Order as a webhook body (lines keyed
fulfilment:variant), its signature and natural dedupe key, the 200 ack, and the
fulfilment calls: shipments per fulfilment, then ``in_transit`` with frozen quantities."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from orderhub.application.services.intake import process_message, store_message
from orderhub.application.services.seller_commands import close_fulfilment, record_shipment
from orderhub.channels.signatures import body_signature
from orderhub.channels.spi import CommandKind, CommandView
from orderhub.domain.values import LineQuantity, OrderStatus, Reason
from orderhub.testing.channel import spresso
from tests.unit.services.support import make_world

from .test_channel import account

NOW = datetime(2026, 1, 5, 12, tzinfo=UTC)
SECRETS = ["old-client-secret", "new-client-secret"]
ORDER_ID = "65820634daf0b556858ed591"


def spresso_order(**changes: Any) -> dict[str, Any]:
    """A Spresso Order: variant V1 split over fulfilments F1 and F2, V2 in F1 only."""
    order: dict[str, Any] = {
        "id": "65820634daf0b556858ed591",
        "orderNo": 19618657,
        "createdAt": "2026-01-05T10:00:00.000Z",
        "status": "sent_to_fulfiller",
        "statusHistory": [
            {"status": "created", "updatedAt": "2026-01-05T10:00:00.000Z"},
            {"status": "sent_to_fulfiller", "updatedAt": "2026-01-05T10:10:00.000Z"},
        ],
        "financialStatus": "authorized",
        "user": {"id": "u1", "email": "ada@example.org", "telephoneNumber": "+1555"},
        "shippingAddress": {
            "firstName": "Ada",
            "lastName": "Lovelace",
            "addressLine1": "1 Main St",
            "city": "Springfield",
            "state": "IL",
            "postalCode": "62701",
            "country": "USA",
        },
        "orderVariants": [
            {"id": "ov1", "quantity": 3, "variant": {"id": "V1", "sku": "COF-1", "name": "Coffee"}},
            {"id": "ov2", "quantity": 1, "variant": {"id": "V2", "sku": "MUG-1", "name": "Mug"}},
        ],
        "fulfillments": [
            {
                "id": "F1",
                "fulfillmentMethod": "carrier_delivery",
                "fulfillerLocation": "loc1",
                "status": "order_placed",
                "fulfillmentVariants": [
                    {"variant": "V1", "quantity": 2},
                    {"variant": "V2", "quantity": 1},
                ],
            },
            {
                "id": "F2",
                "fulfillmentMethod": "carrier_delivery",
                "status": "order_placed",
                "fulfillmentVariants": [{"variant": "V1", "quantity": 1}],
            },
        ],
    }
    order.update(changes)
    return order


def body_of(order: dict[str, Any]) -> bytes:
    return json.dumps(order, separators=(",", ":")).encode()


def test_a_spresso_order_maps_to_lines_keyed_fulfilment_and_variant() -> None:
    snap = spresso.to_snapshot(spresso.decode(body_of(spresso_order())))
    lines = [
        (ls.channel_line_id, ls.sku, ls.quantity, ls.channel_fulfilment_id) for ls in snap.lines
    ]
    assert lines == [
        ("F1:V1", "COF-1", 2, "F1"),
        ("F1:V2", "MUG-1", 1, "F1"),
        ("F2:V1", "COF-1", 1, "F2"),
    ]
    assert snap.lines[0].extras["variant"] == "V1"
    assert [f.channel_fulfilment_id for f in snap.fulfilments] == ["F1", "F2"]
    assert snap.released  # fulfillable: nothing to accept
    assert snap.order_number == "19618657"
    assert snap.updated_at == datetime(2026, 1, 5, 10, 10, tzinfo=UTC)
    assert snap.shipping_address is not None
    assert snap.shipping_address.country_code == "US"
    assert snap.customer is not None
    assert (snap.customer.name, snap.customer.email) == ("Ada Lovelace", "ada@example.org")
    assert snap.cancellations == ()


def test_an_order_cancelled_webhook_cancels_the_whole_order() -> None:
    body = body_of(spresso_order(event="order_cancelled", status="cancelled"))
    [cancellation] = spresso.to_snapshot(spresso.decode(body)).cancellations
    assert (cancellation.reason, cancellation.lines) == (Reason.CHANNEL_CANCELLED, ())


def test_a_fulfilment_method_other_than_carrier_delivery_is_parked() -> None:
    order = spresso_order()
    order["fulfillments"][1]["fulfillmentMethod"] = "in_store_pickup"
    with pytest.raises(spresso.InvalidSpressoOrder, match="only carrier_delivery is handled"):
        spresso.to_snapshot(spresso.decode(body_of(order)))


def test_the_dedupe_key_is_event_order_status_and_newest_status_time() -> None:
    acct = account("spresso")
    body = body_of(spresso_order())
    key = acct.dedupe_key(body, {"webhook-id": "ignored"})
    assert key == (
        "order_fulfillable:65820634daf0b556858ed591:sent_to_fulfiller:2026-01-05T10:10:00+00:00"
    )
    pretty = json.dumps(spresso_order(), indent=2).encode()
    assert acct.dedupe_key(pretty, {}) == key  # the same event, however it is printed
    later = spresso_order(event="order_cancelled", status="cancelled")
    assert acct.dedupe_key(body_of(later), {}) != key
    # the test channel's own document keeps its webhook id
    assert acct.dedupe_key(b'{"id": "CO-1"}', {"webhook-id": "w1"}) == "w1"


def test_webhooks_are_verified_with_any_client_secret_and_acknowledged_200() -> None:
    acct = account("spresso", client_secrets=SECRETS)
    body = body_of(spresso_order())
    assert acct.webhook_ack_status == 200
    for secret in SECRETS:  # a rotation: old and new both pass
        headers = {"x-spresso-hmac-sha256": body_signature(secret, body)}
        verdict = acct.verify_webhook(headers, body, NOW)
        assert verdict is not None
        assert (verdict.accepted, verdict.scheme, verdict.variant) == (True, "spresso-hmac", "raw")
    wrong = acct.verify_webhook({"x-spresso-hmac-sha256": body_signature("guess", body)}, body, NOW)
    assert wrong is not None
    assert not wrong.accepted
    assert acct.verify_webhook({}, body, NOW) is None  # not signed: the account's methods decide
    # signed over the compact form, sent pretty-printed (Spresso's Node sample)
    pretty = json.dumps(spresso_order(), indent=2).encode()
    compact = acct.verify_webhook(
        {"x-spresso-hmac-sha256": body_signature(SECRETS[1], body)}, pretty, NOW
    )
    assert compact is not None
    assert (compact.accepted, compact.variant) == (True, "compact")


def test_other_profiles_keep_the_default_webhook_handling() -> None:
    acct = account("topi", client_secrets=SECRETS)
    assert acct.webhook_ack_status == 202
    assert acct.verify_webhook({"x-spresso-hmac-sha256": "x"}, b"{}", NOW) is None


async def receive(world: Any) -> Any:
    body = body_of(spresso_order())
    stored = await store_message(
        world.hub, channel="testchannel", account="main", body=body, headers={}
    )
    await process_message(world.hub, stored.message_id)
    again = await store_message(
        world.hub, channel="testchannel", account="main", body=body, headers={}
    )
    assert again.duplicate  # the natural key
    world.queue.commands.clear()
    return world.order(ORDER_ID)


async def test_shipments_per_fulfilment_then_in_transit_with_frozen_quantities() -> None:
    world = make_world("spresso")
    order = await receive(world)
    assert order.status is OrderStatus.READY_TO_SHIP
    ids = {line.channel_line_id: line.id for line in order.lines}
    f_ids = {f.channel_fulfilment_id: f.id for f in order.fulfilments}

    await record_shipment(
        world.hub,
        order_id=order.id,
        fulfilment_id=f_ids["F1"],
        items=[LineQuantity(line_id=ids["F1:V1"], quantity=1)],
        carrier="UPS",
        tracking_number="1Z-A",
    )
    assert [c.kind for c in world.commands()] == [CommandKind.SHIP]  # F1 not done yet
    await record_shipment(
        world.hub,
        order_id=order.id,
        fulfilment_id=f_ids["F1"],
        items=[
            LineQuantity(line_id=ids["F1:V1"], quantity=1),
            LineQuantity(line_id=ids["F1:V2"], quantity=1),
        ],
        carrier="UPS",
        tracking_number="1Z-B",
    )
    # F2: nothing of V1 is left there but one unit; one ships, the fulfilment is then done
    await record_shipment(
        world.hub,
        order_id=order.id,
        fulfilment_id=f_ids["F2"],
        items=[LineQuantity(line_id=ids["F2:V1"], quantity=1)],
        carrier="fedex",
        tracking_number="FX-1",
    )
    commands = world.commands()
    assert [c.kind for c in commands] == [
        CommandKind.SHIP,
        CommandKind.SHIP,
        CommandKind.CLOSE_FULFILMENT,  # F1, after its two shipments
        CommandKind.SHIP,
        CommandKind.CLOSE_FULFILMENT,  # F2
    ]
    assert [c.seq for c in commands] == sorted(c.seq for c in commands)
    assert [(v["variant"], v["fulfilled_quantity"]) for v in commands[2].payload["variants"]] == [
        ("V1", 2),
        ("V2", 1),
    ]

    acct = world.account()
    for command in commands:
        await acct.execute(CommandView.of(command), world.order(ORDER_ID))
    requests = [call.payload["request"] for call in acct.calls]
    assert [(r["method"], r["path"]) for r in requests] == [
        ("PUT", "/v1/fulfillments/F1/shipments"),
        ("PUT", "/v1/fulfillments/F1/shipments"),
        ("PUT", "/v1/fulfillments/F1"),
        ("PUT", "/v1/fulfillments/F2/shipments"),
        ("PUT", "/v1/fulfillments/F2"),
    ]
    assert requests[0]["body"] == {
        "carrier": "ups",
        "carrierReferenceId": "1Z-A",
        "trackingNumber": "1Z-A",
        "shipmentVariants": [{"variant": "V1", "quantity": 1}],
    }
    assert requests[2]["body"] == {
        "status": "in_transit",
        "fulfillmentVariants": [
            {"variant": "V1", "fulfilledQuantity": 2},
            {"variant": "V2", "fulfilledQuantity": 1},
        ],
    }


async def test_a_short_close_sends_in_transit_with_the_lower_quantity_and_no_cancel() -> None:
    world = make_world("spresso")
    order = await receive(world)
    ids = {line.channel_line_id: line.id for line in order.lines}
    f1 = next(f.id for f in order.fulfilments if f.channel_fulfilment_id == "F1")
    await record_shipment(
        world.hub,
        order_id=order.id,
        fulfilment_id=f1,
        items=[LineQuantity(line_id=ids["F1:V1"], quantity=1)],
        tracking_number="1Z-A",
    )
    await close_fulfilment(world.hub, order_id=order.id, fulfilment_id=f1)

    ship, cancel, close = world.commands()
    assert (ship.kind, cancel.kind, close.kind) == (
        CommandKind.SHIP,
        CommandKind.CANCEL,
        CommandKind.CLOSE_FULFILMENT,
    )
    frozen = [(v["variant"], v["fulfilled_quantity"]) for v in close.payload["variants"]]
    assert frozen == [("V1", 1), ("V2", 0)]  # out of stock: 0

    acct = world.account()
    outcome = await acct.execute(CommandView.of(cancel), world.order(ORDER_ID))
    assert outcome.data == {"sent": False, "carried_by": "in_transit"}
    assert acct.calls == []  # Spresso has no cancellation call
    await acct.execute(CommandView.of(close), world.order(ORDER_ID))
    [call] = acct.calls
    assert call.payload["request"]["body"]["fulfillmentVariants"] == [
        {"variant": "V1", "fulfilledQuantity": 1},
        {"variant": "V2", "fulfilledQuantity": 0},
    ]
