"""Whole lifecycles through the public doors only: the channel pushes webhooks (through the
test channel server's ``/_send_order``), the warehouse uses ``/api/v1``, and the feed and
the channel server's records tell what happened."""

from __future__ import annotations

from typing import Any

from .support import (
    ChannelServer,
    Hub,
    assert_gapless,
    fulfilment_ids,
    line_ids,
    order_document,
    succeeded_commands,
    types_for,
    wait_until,
)


def push(
    server: ChannelServer, hub: Hub, account: str, document: dict[str, Any], status: int = 202
) -> None:
    answer = server.send_order(hub, account, document)
    assert answer["status"] == status, answer  # Spresso's webhooks are acknowledged with 200


def settle(hub: Hub, order_id: str) -> None:
    """Until the order has no command left to send (the ones the adapter added too)."""
    wait_until(
        lambda: hub.order(order_id)["pending_commands"] == [],
        f"order {order_id} to have sent its commands",
        alive=hub.check_alive,
    )


def assert_calls_once(
    server: ChannelServer, channel_order_id: str, command_ids: list[str], kinds: list[str]
) -> list[dict[str, Any]]:
    """The channel server recorded exactly these calls for the order, each once, never
    replayed, keyed by the command id."""
    calls = server.calls_for(channel_order_id)
    assert [c["command_id"] for c in calls] == command_ids
    assert [c["kind"] for c in calls] == kinds
    assert [c["key"] for c in calls] == command_ids  # Idempotency-Key = command id
    assert [c["replays"] for c in calls] == [0] * len(calls)
    return calls


def test_octopia_order_from_receipt_to_delivery(hub: Hub) -> None:
    """Octopia-like: per-line acceptance, the channel releases the order with a later
    snapshot, the warehouse ships in two parcels, the channel reports the delivery."""
    channel_server = hub.channel_server
    lines = [("L1", 2), ("L2", 1)]
    push(channel_server, hub, "octopia", order_document("CO-100", "WaitingAcceptance", lines))
    order = hub.wait_for_order("octopia", "CO-100")
    order_id = order["id"]
    ids = line_ids(order)
    assert order["status"] == "awaiting_acceptance"
    assert order["channel_status"] == "WaitingAcceptance"
    assert order["order_number"] == "100"

    # per-line acceptance: the first line, then the second
    first = hub.command(order_id, "accept", {"lines": [{"line_id": ids["L1"], "quantity": 2}]})
    hub.wait_for_command(first)
    assert hub.order(order_id)["status"] == "awaiting_acceptance"
    second = hub.command(order_id, "accept", {"lines": [{"line_id": ids["L2"], "quantity": 1}]})
    hub.wait_for_command(second)
    order = hub.order(order_id)
    assert order["status"] == "accepted"  # Octopia: accepted is not yet released
    assert [(line["accepted"], line["quantity"]) for line in order["lines"]] == [(2, 2), (1, 1)]

    # shipping before the channel releases the order is refused
    early = hub.post(
        f"/orders/{order_id}/shipments",
        json={
            "carrier": "DHL",
            "tracking_number": "0",
            "items": [{"line_id": ids["L1"], "quantity": 1}],
        },
    )
    assert early.status_code == 409, early.text
    assert early.json()["rule"] == "ship-before-release"

    # the channel releases the order (a later snapshot)
    accepted = {"L1": {"accepted": 2}, "L2": {"accepted": 1}}
    push(
        channel_server,
        hub,
        "octopia",
        order_document("CO-100", "InPreparation", lines, released=True, counters=accepted),
    )
    hub.wait_for_status(order_id, "ready_to_ship")

    # two parcels: first one unit of L1, then the rest
    ship1 = hub.command(
        order_id,
        "shipments",
        {
            "carrier": "DHL",
            "tracking_number": "PARCEL-1",
            "tracking_url": "https://track.example/PARCEL-1",
            "items": [{"line_id": ids["L1"], "quantity": 1}],
        },
    )
    hub.wait_for_command(ship1)
    assert hub.order(order_id)["status"] == "partially_shipped"
    ship2 = hub.command(
        order_id,
        "shipments",
        {
            "carrier": "DHL",
            "tracking_number": "PARCEL-2",
            "items": [
                {"line_id": ids["L1"], "quantity": 1},
                {"line_id": ids["L2"], "quantity": 1},
            ],
        },
    )
    hub.wait_for_command(ship2)
    order = hub.order(order_id)
    assert order["status"] == "shipped"
    assert [s["tracking_number"] for s in order["shipments"]] == ["PARCEL-1", "PARCEL-2"]

    # the warehouse cannot confirm delivery on this channel: the channel reports it
    refused = hub.post(f"/orders/{order_id}/deliveries", json={})
    assert refused.status_code == 409, refused.text
    assert refused.json()["rule"] == "delivery-confirmation-not-supported"
    delivered = {
        "L1": {"accepted": 2, "shipped": 2, "delivered": 2},
        "L2": {"accepted": 1, "shipped": 1, "delivered": 1},
    }
    push(
        channel_server,
        hub,
        "octopia",
        order_document("CO-100", "Delivered", lines, released=True, counters=delivered),
    )
    order = hub.wait_for_status(order_id, "delivered")
    assert order["channel_status"] == "Delivered"
    assert order["pending_commands"] == []
    assert order["failed_commands"] == []

    events = hub.feed()
    assert_gapless(events)
    assert types_for(events, order_id) == [
        "order.received",
        "order.accepted",
        "command.succeeded",
        "order.accepted",
        "command.succeeded",
        "order.ready_to_ship",
        "order.shipment_recorded",
        "command.succeeded",
        "order.shipment_recorded",
        "order.shipped",
        "command.succeeded",
        "order.delivered",
    ]
    commands = [first, second, ship1, ship2]
    assert succeeded_commands(e for e in events if e["order_id"] == order_id) == commands
    for event in events:
        assert event["channel"] == "testchannel"
    calls = assert_calls_once(
        channel_server, "CO-100", commands, ["accept", "accept", "ship", "ship"]
    )
    assert [i["channel_line_id"] for i in calls[0]["payload"]["lines"]] == ["L1"]
    assert [i["channel_line_id"] for i in calls[1]["payload"]["lines"]] == ["L2"]
    assert calls[2]["payload"]["tracking_number"] == "PARCEL-1"
    assert [(i["channel_line_id"], i["quantity"]) for i in calls[3]["payload"]["items"]] == [
        ("L1", 1),
        ("L2", 1),
    ]


def test_cancellation_request_refused_then_accepted(
    hub: Hub,
) -> None:
    """Octopia-like: the channel asks to cancel; the warehouse refuses; it asks again; the
    warehouse accepts and the order is cancelled."""
    channel_server = hub.channel_server
    lines = [("L1", 1), ("L2", 3)]
    push(channel_server, hub, "octopia", order_document("CO-200", "WaitingAcceptance", lines))
    order_id = hub.wait_for_order("octopia", "CO-200")["id"]
    accept = hub.command(order_id, "accept", None)
    hub.wait_for_command(accept)
    assert hub.order(order_id)["status"] == "accepted"

    accepted = {"L1": {"accepted": 1}, "L2": {"accepted": 3}}
    first_request = {
        "id": "CR-1",
        "initiator": "customer",
        "reason": "customer_request",
        "state": "requested",
    }
    push(
        channel_server,
        hub,
        "octopia",
        order_document(
            "CO-200", "CancelRequest", lines, counters=accepted, cancellations=[first_request]
        ),
    )
    order = hub.wait_for_order(
        "octopia", "CO-200", until=lambda o: o["cancellation_requested"], what="to be contested"
    )
    assert order["status"] == "accepted"  # unchanged by an open request
    [request] = order["cancellations"]
    assert (request["state"], request["channel_cancellation_id"]) == ("requested", "CR-1")

    refuse = hub.command(order_id, "cancellations", {"decision": "refuse"})
    order = hub.order(order_id)
    assert order["cancellation_requested"] is False
    assert order["status"] == "accepted"
    assert order["cancellations"][0]["state"] == "refused"
    hub.wait_for_command(refuse)

    # the channel asks again (and lists the first request as refused)
    second_request = {
        "id": "CR-2",
        "initiator": "customer",
        "reason": "customer_request",
        "state": "requested",
    }
    push(
        channel_server,
        hub,
        "octopia",
        order_document(
            "CO-200",
            "CancelRequest",
            lines,
            counters=accepted,
            cancellations=[{**first_request, "state": "refused"}, second_request],
        ),
    )
    hub.wait_for_order(
        "octopia", "CO-200", until=lambda o: o["cancellation_requested"], what="to be contested"
    )
    accept_request = hub.command(order_id, "cancellations", {"decision": "accept"})
    hub.wait_for_command(accept_request)
    order = hub.order(order_id)
    assert order["status"] == "cancelled"
    assert order["cancellation_requested"] is False
    assert [(c["channel_cancellation_id"], c["state"]) for c in order["cancellations"]] == [
        ("CR-1", "refused"),
        ("CR-2", "accepted"),
    ]
    assert [line["cancelled"] for line in order["lines"]] == [1, 3]

    events = hub.feed()
    assert_gapless(events)
    assert types_for(events, order_id) == [
        "order.received",
        "order.accepted",
        "command.succeeded",
        "order.cancellation_requested",
        "order.cancellation_refused",
        "command.succeeded",
        "order.cancellation_requested",
        "order.cancelled",
        "command.succeeded",
    ]
    cancelled = next(e for e in events if e["type"] == "order.cancelled")
    assert (cancelled["data"]["reason"], cancelled["data"]["initiator"]) == (
        "customer_request",
        "customer",
    )
    calls = assert_calls_once(
        channel_server,
        "CO-200",
        [accept, refuse, accept_request],
        ["accept", "decide_cancellation", "decide_cancellation"],
    )
    assert [c["payload"]["decision"] for c in calls[1:]] == ["refuse", "accept"]
    assert [c["payload"]["channel_cancellation_id"] for c in calls[1:]] == ["CR-1", "CR-2"]


def test_spresso_order_with_fulfilments_short_ship_and_delivery(
    hub: Hub,
) -> None:
    """Spresso-like: two fulfilments, arriving ready; a final short shipment cancels what did
    not ship as out_of_stock; the seller reports each delivery."""
    channel_server = hub.channel_server
    lines = [("A", 2, "F1"), ("B", 1, "F1"), ("C", 3, "F2")]
    document = order_document(
        "CO-300",
        "fulfillable",
        lines,
        fulfilments=[{"id": "F1"}, {"id": "F2"}],
        released=True,
    )
    push(channel_server, hub, "spresso", document, status=200)
    order = hub.wait_for_order("spresso", "CO-300")
    order_id = order["id"]
    ids = line_ids(order)
    fulfilments = fulfilment_ids(order)
    assert order["status"] == "ready_to_ship"
    assert {f["status"] for f in order["fulfilments"]} == {"open"}

    # there is nothing to accept on this channel
    refused = hub.post(f"/orders/{order_id}/accept", json={})
    assert refused.status_code == 409, refused.text
    assert refused.json()["rule"] == "acceptance-not-supported"

    ship_f1 = hub.command(
        order_id,
        "shipments",
        {
            "fulfilment_id": fulfilments["F1"],
            "carrier": "UPS",
            "tracking_number": "1Z-F1",
            "items": [
                {"line_id": ids["A"], "quantity": 2},
                {"line_id": ids["B"], "quantity": 1},
            ],
        },
    )
    hub.wait_for_command(ship_f1)
    settle(hub, order_id)  # and F1's in_transit
    assert hub.order(order_id)["status"] == "partially_shipped"

    # one of three C units is there: ship it and close the fulfilment
    ship_f2 = hub.command(
        order_id,
        "shipments",
        {
            "fulfilment_id": fulfilments["F2"],
            "carrier": "UPS",
            "tracking_number": "1Z-F2",
            "items": [{"line_id": ids["C"], "quantity": 1}],
            "final": True,
        },
    )
    order = hub.order(order_id)
    assert order["status"] == "shipped"
    line_c = next(line for line in order["lines"] if line["id"] == ids["C"])
    assert (line_c["shipped"], line_c["cancelled"]) == (1, 2)
    [short] = order["cancellations"]
    assert (short["reason"], short["initiator"], short["state"]) == (
        "out_of_stock",
        "seller",
        "accepted",
    )
    assert short["lines"] == [{"line_id": ids["C"], "quantity": 2}]
    hub.wait_for_command(ship_f2)
    settle(hub, order_id)

    deliver_f1 = hub.command(order_id, "deliveries", {"fulfilment_id": fulfilments["F1"]})
    hub.wait_for_command(deliver_f1)
    assert hub.order(order_id)["status"] == "shipped"
    deliver_f2 = hub.command(order_id, "deliveries", {"fulfilment_id": fulfilments["F2"]})
    hub.wait_for_command(deliver_f2)
    order = hub.order(order_id)
    assert order["status"] == "delivered"
    assert {f["channel_fulfilment_id"]: f["status"] for f in order["fulfilments"]} == {
        "F1": "delivered",
        "F2": "delivered",
    }

    events = hub.feed()
    assert_gapless(events)
    assert types_for(events, order_id) == [
        "order.received",
        "order.ready_to_ship",
        "order.shipment_recorded",
        "fulfilment.shipped",  # F1, whole
        "command.succeeded",
        "command.succeeded",  # F1 in_transit
        "order.shipment_recorded",
        "fulfilment.shipped",  # F2, closed short
        "order.lines_cancelled",
        "order.shipped",
        "command.succeeded",
        "command.succeeded",  # F2 in_transit
        "fulfilment.delivered",  # F1
        "order.updated",  # F1 delivered: part of the order
        "command.succeeded",
        "fulfilment.delivered",  # F2
        "order.delivered",
        "command.succeeded",
    ]
    mine = [e for e in events if e["order_id"] == order_id]  # other tests share the feed
    closed = [e for e in mine if e["type"] == "fulfilment.shipped"][1]["data"]
    assert closed["channel_fulfilment_id"] == "F2"
    assert [(x["shipped"], x["cancelled"]) for x in closed["lines"]] == [(1, 2)]  # frozen
    lines_cancelled = next(e for e in mine if e["type"] == "order.lines_cancelled")
    assert lines_cancelled["data"]["reason"] == "out_of_stock"
    assert lines_cancelled["data"]["initiator"] == "seller"
    in_transit = [c["command_id"] for c in channel_server.calls_for("CO-300")][1:4:2]
    calls = assert_calls_once(
        channel_server,
        "CO-300",
        [ship_f1, in_transit[0], ship_f2, in_transit[1], deliver_f1, deliver_f2],
        ["ship", "close_fulfilment", "ship", "close_fulfilment", "deliver", "deliver"],
    )
    assert [calls[i]["payload"]["final"] for i in (0, 2)] == [False, True]
    assert [c["payload"]["fulfilment_id"] for c in calls] == [
        fulfilments["F1"],
        fulfilments["F1"],
        fulfilments["F2"],
        fulfilments["F2"],
        fulfilments["F1"],
        fulfilments["F2"],
    ]
