"""The test channel's ``octopia`` profile against the running hub: capabilities per sales
channel, Octopia's own refusals before anything is sent (unknown carrier, a second parcel
on Cdiscount, a reason code for a line in CancelRequest), and an order the channel ships
itself. The account ``octopia-sc`` lists the sales channels (see ``support.ACCOUNTS``)."""

from __future__ import annotations

from typing import Any

from .support import Hub, is_problem, line_ids, order_document, types_for

ACCOUNT = "octopia-sc"


def push(hub: Hub, document: dict[str, Any]) -> None:
    answer = hub.channel_server.send_order(hub, ACCOUNT, document)
    assert answer["status"] == 202, answer


def kinds_sent(hub: Hub, channel_order_id: str) -> list[str]:
    return [c["kind"] for c in hub.channel_server.calls_for(channel_order_id)]


def test_each_sales_channel_has_its_rules_and_cdiscount_takes_one_parcel(hub: Hub) -> None:
    lines = [("L1", 2), ("L2", 1)]
    push(hub, order_document("CO-SC-1", "WaitingAcceptance", lines, sales_channel="CDISFR"))
    push(
        hub,
        order_document("CO-SC-2", "InPreparation", lines, sales_channel="OCTOBE", released=True),
    )
    cdiscount = hub.wait_for_order(ACCOUNT, "CO-SC-1")
    belgium = hub.wait_for_order(ACCOUNT, "CO-SC-2")
    caps = cdiscount["capabilities"]
    assert (caps["acceptance"], caps["shipment"], caps["cancellation_decision"]) == (
        "line",
        "order",
        "line",
    )
    caps = belgium["capabilities"]
    assert (caps["acceptance"], caps["shipment"], caps["seller_cancellation"]) == (
        "none",
        "order",
        "order",
    )
    assert belgium["status"] == "ready_to_ship"  # auto-accepted: nothing to accept

    order_id = cdiscount["id"]
    ids = line_ids(cdiscount)
    accept = hub.command(order_id, "accept", {"lines": [{"line_id": ids["L1"], "quantity": 2}]})
    hub.wait_for_command(accept)
    push(
        hub,
        order_document(
            "CO-SC-1",
            "InPreparation",
            lines,
            sales_channel="CDISFR",
            released=True,
            counters={"L1": {"accepted": 2}},
        ),
    )
    hub.wait_for_order(  # L2 still awaits acceptance: released, not all ready
        ACCOUNT, "CO-SC-1", until=lambda o: o["channel_status"] == "InPreparation"
    )

    def ship(line: str, quantity: int, carrier: str, number: str) -> Any:
        return hub.post(
            f"/orders/{order_id}/shipments",
            json={
                "carrier": carrier,
                "tracking_number": number,
                "items": [{"line_id": ids[line], "quantity": quantity}],
            },
        )

    body = is_problem(ship("L1", 2, "La Poste", "P1"), 422, "unknown-carrier")
    assert "La Poste" in body["detail"]
    assert hub.order(order_id)["shipments"] == []

    first = ship("L1", 2, "Colissimo", "P1")
    assert first.status_code == 202, first.text
    hub.wait_for_command(first.json()["command_id"])
    accept_l2 = hub.command(order_id, "accept", {"lines": [{"line_id": ids["L2"], "quantity": 1}]})
    hub.wait_for_command(accept_l2)

    body = is_problem(ship("L2", 1, "Colissimo", "P2"), 409, "one-parcel-per-order")
    assert "one parcel per complete order" in body["detail"]
    order = hub.order(order_id)
    assert [s["tracking_number"] for s in order["shipments"]] == ["P1"]
    assert order["pending_commands"] == []
    # what the channel received, in order: nothing of the refused attempts
    assert kinds_sent(hub, "CO-SC-1") == ["accept", "ship", "accept"]
    [sent] = [c for c in hub.channel_server.calls_for("CO-SC-1") if c["kind"] == "ship"]
    assert (sent["payload"]["carrier"], sent["payload"]["tracking_number"]) == ("Colissimo", "P1")


def test_a_reason_code_for_a_line_in_cancel_request_is_refused(hub: Hub) -> None:
    lines = [("L1", 1), ("L2", 1)]
    request = {"id": "CR-9", "initiator": "customer", "reason": "customer_request"}
    push(
        hub,
        order_document(
            "CO-SC-3",
            "CancelRequest",
            lines,
            sales_channel="OCTOBE",
            released=True,
            cancellations=[request],
        ),
    )
    order = hub.wait_for_order(ACCOUNT, "CO-SC-3")
    assert (order["status"], order["cancellation_requested"]) == ("ready_to_ship", True)

    response = hub.post(f"/orders/{order['id']}/cancellations", json={"reason": "seller_refusal"})
    body = is_problem(response, 409, "cancellation-reason-not-allowed-in-channel-state")
    assert "CancelRequest" in body["detail"]
    order = hub.order(order["id"])
    assert [line["cancelled"] for line in order["lines"]] == [0, 0]
    assert order["pending_commands"] == []
    assert kinds_sent(hub, "CO-SC-3") == []


def test_an_order_the_channel_ships_is_never_ready_for_the_warehouse(hub: Hub) -> None:
    lines = [{"id": "L1", "title": "Phone", "quantity": 1, "supply_mode": "Fulfillment"}]
    document = order_document("CO-SC-4", "InPreparation", [], sales_channel="CDISFR", released=True)
    push(hub, {**document, "lines": lines, "counters": {"L1": {"accepted": 1}}})
    order = hub.wait_for_order(ACCOUNT, "CO-SC-4")
    order_id = order["id"]
    assert order["fulfilled_by"] == "channel"
    [fulfilment] = order["fulfilments"]
    assert fulfilment["fulfilled_by"] == "channel"

    listed = hub.get("/orders", params={"account": ACCOUNT, "fulfilled_by": "channel"})
    assert listed.status_code == 200, listed.text
    assert order_id in [o["id"] for o in listed.json()["orders"]]
    ours = hub.get("/orders", params={"account": ACCOUNT, "fulfilled_by": "seller"})
    assert order_id not in [o["id"] for o in ours.json()["orders"]]

    refused = hub.post(
        f"/orders/{order_id}/shipments",
        json={
            "carrier": "DHL",
            "tracking_number": "X1",
            "items": [{"line_id": order["lines"][0]["id"], "quantity": 1}],
        },
    )
    is_problem(refused, 409, "channel-fulfilled-line")

    # the partner ships it: the channel reports its parcel, recorded once however often
    shipped = {
        **document,
        "status": "Shipped",
        "lines": [{**lines[0], "parcels": [{"number": "FBA-1", "carrier": "Chronopost"}]}],
        "counters": {"L1": {"accepted": 1, "shipped": 1}},
    }
    push(hub, shipped)
    delivered = {"L1": {"accepted": 1, "shipped": 1, "delivered": 1}}
    push(hub, {**shipped, "status": "Delivered", "counters": delivered})  # the parcel again
    order = hub.wait_for_order(
        ACCOUNT, "CO-SC-4", until=lambda o: o["status"] == "delivered", what="to be delivered"
    )
    assert [(s["tracking_number"], s["carrier"]) for s in order["shipments"]] == [
        ("FBA-1", "Chronopost")
    ]
    events = types_for(hub.feed(), order_id)
    assert "order.ready_to_ship" not in events
    assert events.count("order.shipment_recorded") == 1
    assert kinds_sent(hub, "CO-SC-4") == []


def test_a_cancellation_request_is_decided_line_by_line_on_cdiscount(hub: Hub) -> None:
    """CDISFR decides requests per line: the WMS accepts one line's cancellation, then
    refuses the other's; the channel gets two decisions, in that order, each naming its
    line. OCTOBE decides requests whole: a decision naming a line is refused, nothing sent."""
    lines = [("L1", 1), ("L2", 1)]
    request = {
        "id": "CR-5",
        "initiator": "customer",
        "reason": "customer_request",
        "lines": [{"line": "L1", "quantity": 1}, {"line": "L2", "quantity": 1}],
    }
    push(
        hub,
        order_document(
            "CO-SC-5",
            "InPreparation",
            lines,
            sales_channel="CDISFR",
            released=True,
            counters={"L1": {"accepted": 1}, "L2": {"accepted": 1}},
            cancellations=[request],
        ),
    )
    order = hub.wait_for_order(ACCOUNT, "CO-SC-5")
    assert order["cancellation_requested"] is True
    ids = line_ids(order)

    first = hub.command(
        order["id"],
        "cancellations",
        {"decision": "accept", "lines": [{"line_id": ids["L2"], "quantity": 1}]},
    )
    second = hub.command(order["id"], "cancellations", {"decision": "refuse"})
    hub.wait_for_command(first)
    hub.wait_for_command(second)

    sent = [c for c in hub.channel_server.calls_for("CO-SC-5") if c["kind"] != "accept"]
    assert [(c["kind"], c["payload"]["decision"]) for c in sent] == [
        ("decide_cancellation", "accept"),
        ("decide_cancellation", "refuse"),
    ]
    assert [[i["line_id"] for i in c["payload"]["lines"]] for c in sent] == [
        [ids["L2"]],
        [ids["L1"]],
    ]
    assert {c["payload"]["channel_cancellation_id"] for c in sent} == {"CR-5"}
    order = hub.order(order["id"])
    assert {x["channel_line_id"]: x["cancelled"] for x in order["lines"]} == {"L1": 0, "L2": 1}
    assert order["cancellation_requested"] is False

    push(
        hub,
        order_document(
            "CO-SC-6",
            "InPreparation",
            lines,
            sales_channel="OCTOBE",
            released=True,
            cancellations=[{**request, "id": "CR-6"}],
        ),
    )
    whole_only = hub.wait_for_order(ACCOUNT, "CO-SC-6")
    response = hub.post(
        f"/orders/{whole_only['id']}/cancellations",
        json={
            "decision": "accept",
            "lines": [{"line_id": line_ids(whole_only)["L2"], "quantity": 1}],
        },
    )
    is_problem(response, 409, "cancellation-decision-whole-only")
    assert kinds_sent(hub, "CO-SC-6") == []
