"""The test channel's ``spresso`` profile against the running hub: Spresso's Order pushed
as Spresso does (signed ``X-Spresso-Hmac-SHA256``, acknowledged 200, deduplicated by its
natural key), the same variant in two fulfilments, shipments per fulfilment and then
exactly one ``in_transit`` per fulfilment with the frozen quantities."""

from __future__ import annotations

from typing import Any

from .support import (
    SPRESSO_CLIENT_SECRETS,
    ChannelServer,
    Hub,
    assert_gapless,
    types_for,
    wait_until,
)

ACCOUNT = "spresso"


def spresso_order(order_id: str) -> dict[str, Any]:
    """Variant V1 in fulfilments F1 (2 units) and F2 (1 unit), V2 in F1."""
    return {
        "event": "order_fulfillable",
        "id": order_id,
        "orderNo": 19618657,
        "createdAt": "2026-01-05T10:00:00.000Z",
        "status": "sent_to_fulfiller",
        "statusHistory": [{"status": "sent_to_fulfiller", "updatedAt": "2026-01-05T10:10:00Z"}],
        "user": {"id": "u1", "email": "ada@example.org"},
        "shippingAddress": {"firstName": "Ada", "lastName": "Lovelace", "country": "USA"},
        "orderVariants": [
            {"id": "ov1", "quantity": 3, "variant": {"id": "V1", "sku": "COF-1", "name": "Coffee"}},
            {"id": "ov2", "quantity": 1, "variant": {"id": "V2", "sku": "MUG-1", "name": "Mug"}},
        ],
        "fulfillments": [
            {
                "id": f"{order_id}-F1",
                "fulfillmentMethod": "carrier_delivery",
                "status": "order_placed",
                "fulfillmentVariants": [
                    {"variant": "V1", "quantity": 2},
                    {"variant": "V2", "quantity": 1},
                ],
            },
            {
                "id": f"{order_id}-F2",
                "fulfillmentMethod": "carrier_delivery",
                "status": "order_placed",
                "fulfillmentVariants": [{"variant": "V1", "quantity": 1}],
            },
        ],
    }


def send(server: ChannelServer, hub: Hub, order: dict[str, Any], secret: str) -> dict[str, Any]:
    """Spresso pushes the order: signed with ``secret`` ("" : unsigned), no message id."""
    response = server.client.post(
        "/_send_order",
        json={"order": order, "webhook_url": hub.webhook_url(ACCOUNT), "spresso_secret": secret},
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_signed_webhooks_are_acknowledged_200_and_unsigned_ones_401(hub: Hub) -> None:
    server = hub.channel_server
    order = spresso_order("6582000000000000000000a1")
    assert send(server, hub, order, "")["status"] == 401
    assert send(server, hub, order, "not-the-secret")["status"] == 401
    assert hub.find_order(ACCOUNT, order["id"]) is None

    first = send(server, hub, order, SPRESSO_CLIENT_SECRETS[0])
    assert first["status"] == 200, first
    again = send(server, hub, order, SPRESSO_CLIENT_SECRETS[1])  # rotated: the new one works
    assert again["status"] == 200, again
    found = hub.wait_for_order(ACCOUNT, order["id"])
    assert found["status"] == "ready_to_ship"
    # the same event twice (event, order, status, status time): stored once
    assert (
        hub.count("inbox_messages", f"account = '{ACCOUNT}' AND order_key = '{order['id']}'") == 1
    )


def test_shipments_per_fulfilment_then_one_in_transit_each_with_frozen_quantities(
    hub: Hub,
) -> None:
    server = hub.channel_server
    spresso_id = "6582000000000000000000b2"
    assert send(server, hub, spresso_order(spresso_id), SPRESSO_CLIENT_SECRETS[1])["status"] == 200
    order = hub.wait_for_order(ACCOUNT, spresso_id)
    order_id = order["id"]
    f1, f2 = f"{spresso_id}-F1", f"{spresso_id}-F2"
    ids = {line["channel_line_id"]: line["id"] for line in order["lines"]}
    assert sorted(ids) == [f"{f1}:V1", f"{f1}:V2", f"{f2}:V1"]  # V1 twice, keyed F:V
    fulfilments = {f["channel_fulfilment_id"]: f["id"] for f in order["fulfilments"]}
    assert order["status"] == "ready_to_ship"

    def ship(fulfilment: str, number: str, items: dict[str, int], final: bool = False) -> str:
        return hub.command(
            order_id,
            "shipments",
            {
                "fulfilment_id": fulfilments[fulfilment],
                "carrier": "UPS",
                "tracking_number": number,
                "items": [{"line_id": ids[k], "quantity": q} for k, q in items.items()],
                "final": final,
            },
        )

    ship_a = ship(f1, "1Z-A", {f"{f1}:V1": 1})
    ship_b = ship(f1, "1Z-B", {f"{f1}:V1": 1, f"{f1}:V2": 1})  # F1 done
    ship_c = ship(f2, "1Z-C", {f"{f2}:V1": 1})  # F2 done
    for command_id in (ship_a, ship_b, ship_c):
        hub.wait_for_command(command_id)

    def settled() -> dict[str, Any] | None:
        current = hub.order(order_id)
        return current if current["pending_commands"] == [] else None

    order = wait_until(settled, "the in_transit calls to be sent", alive=hub.check_alive)
    assert order["status"] == "shipped"

    calls = server.calls_for(spresso_id)
    requests = [(c["kind"], c["payload"]["request"]["path"]) for c in calls]
    assert requests == [
        ("ship", f"/v1/fulfillments/{f1}/shipments"),
        ("ship", f"/v1/fulfillments/{f1}/shipments"),
        ("close_fulfilment", f"/v1/fulfillments/{f1}"),  # after its shipments
        ("ship", f"/v1/fulfillments/{f2}/shipments"),
        ("close_fulfilment", f"/v1/fulfillments/{f2}"),
    ]
    assert [c["command_id"] for i, c in enumerate(calls) if i in (0, 1, 3)] == [
        ship_a,
        ship_b,
        ship_c,
    ]
    assert [c["replays"] for c in calls] == [0] * 5
    assert calls[1]["payload"]["request"]["body"]["shipmentVariants"] == [
        {"variant": "V1", "quantity": 1},
        {"variant": "V2", "quantity": 1},
    ]
    assert calls[2]["payload"]["request"]["body"] == {
        "status": "in_transit",
        "fulfillmentVariants": [
            {"variant": "V1", "fulfilledQuantity": 2},
            {"variant": "V2", "fulfilledQuantity": 1},
        ],
    }
    assert calls[4]["payload"]["request"]["body"] == {
        "status": "in_transit",
        "fulfillmentVariants": [{"variant": "V1", "fulfilledQuantity": 1}],
    }

    events = hub.feed()
    assert_gapless(events)
    shipped = [
        e["data"] for e in events if e["order_id"] == order_id and e["type"] == "fulfilment.shipped"
    ]
    assert [e["channel_fulfilment_id"] for e in shipped] == [f1, f2]
    assert [[x["shipped"] for x in e["lines"]] for e in shipped] == [[2, 1], [1]]
    assert types_for(events, order_id).count("command.succeeded") == 5
