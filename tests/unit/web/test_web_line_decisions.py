"""Over the API: a cancellation request decided line by line (the channel's way of
carrying out a refusal in the command), and a fulfilment closed short."""

from __future__ import annotations

from typing import Any

from orderhub.application.ports import CommandKind

from .support import Harness, assert_problem, auth, commanding

TWO_LINES = ({"id": "a", "quantity": 2}, {"id": "b", "quantity": 1})


async def post(harness: Harness, path: str, payload: Any = None) -> Any:
    return await harness.client.post(path, json=payload, headers=commanding())


def line(order: Any, channel_line_id: str) -> str:
    return next(x.id for x in order.lines if x.channel_line_id == channel_line_id)


async def test_a_request_is_decided_line_by_line(harness: Harness) -> None:
    order = await harness.seed(
        lines=TWO_LINES, cancellation={"id": "CR-1", "lines": [["a", 2], ["b", 1]]}
    )
    path = f"/api/v1/orders/{order.id}/cancellations"

    accepted = await post(
        harness,
        path,
        {"decision": "accept", "lines": [{"line_id": line(order, "b"), "quantity": 1}]},
    )
    assert accepted.status_code == 202, accepted.text
    first = harness.db.commands[accepted.json()["command_id"]]
    assert first.kind is CommandKind.DECIDE_CANCELLATION
    assert first.payload["decision"] == "accept"
    assert first.payload["channel_cancellation_id"] == "CR-1"
    assert [(i["line_id"], i["quantity"]) for i in first.payload["lines"]] == [
        (line(order, "b"), 1)
    ]
    assert first.payload["refusal"] is None

    refused = await post(harness, path, {"decision": "refuse"})  # the rest: line a
    assert refused.status_code == 202, refused.text
    second = harness.db.commands[refused.json()["command_id"]]
    assert [(i["line_id"], i["quantity"]) for i in second.payload["lines"]] == [
        (line(order, "a"), 2)
    ]
    assert second.payload["refusal"] == "ship"  # this channel takes a refusal as a shipment
    assert second.seq > first.seq

    body = (await harness.client.get(f"/api/v1/orders/{order.id}", headers=auth("reader"))).json()
    states = sorted((c["state"], c["channel_cancellation_id"]) for c in body["cancellations"])
    assert states == [("accepted", "CR-1"), ("refused", "CR-1")]
    assert body["cancellation_requested"] is False
    counters = {x["channel_line_id"]: x["cancelled"] for x in body["lines"]}
    assert counters == {"a": 0, "b": 1}


async def test_a_line_decision_for_units_not_asked_is_a_problem(harness: Harness) -> None:
    order = await harness.seed(lines=TWO_LINES, cancellation={"id": "CR-1", "lines": [["b", 1]]})
    before = harness.state()
    response = await post(
        harness,
        f"/api/v1/orders/{order.id}/cancellations",
        {"decision": "accept", "lines": [{"line_id": line(order, "a"), "quantity": 1}]},
    )
    assert_problem(response, 422, "line-not-in-cancellation-request")
    empty = await post(
        harness, f"/api/v1/orders/{order.id}/cancellations", {"decision": "accept", "lines": []}
    )
    assert_problem(empty, 422, "validation-error")
    assert harness.state() == before


async def test_a_fulfilment_is_closed_short(harness: Harness) -> None:
    order = await harness.seed(lines=TWO_LINES, released=True)
    accepted = await post(harness, f"/api/v1/orders/{order.id}/accept")
    assert accepted.status_code == 202, accepted.text
    shipped = await post(
        harness,
        f"/api/v1/orders/{order.id}/shipments",
        {
            "carrier": "dhl",
            "tracking_number": "T-1",
            "items": [{"line_id": line(order, "a"), "quantity": 1}],
        },
    )
    assert shipped.status_code == 202, shipped.text
    fulfilment = order.fulfilments[0].id

    closed = await post(harness, f"/api/v1/orders/{order.id}/fulfilments/{fulfilment}/close")

    assert closed.status_code == 202, closed.text
    body = closed.json()
    assert (body["kind"], body["order_status"]) == ("cancel", "shipped")
    command = harness.db.commands[body["command_id"]]
    assert command.payload["reason"] == "out_of_stock"
    assert command.payload["closes_fulfilment"] == fulfilment
    assert sorted((i["line_id"], i["quantity"]) for i in command.payload["lines"]) == sorted(
        [(line(order, "a"), 1), (line(order, "b"), 1)]
    )
    again = await post(harness, f"/api/v1/orders/{order.id}/fulfilments/{fulfilment}/close")
    assert_problem(again, 409, "nothing-to-close")


async def test_closing_an_unknown_or_unshipped_fulfilment_is_a_problem(harness: Harness) -> None:
    order = await harness.seed(lines=TWO_LINES, released=True)
    before = harness.state()
    unknown = await post(harness, f"/api/v1/orders/{order.id}/fulfilments/nope/close")
    assert_problem(unknown, 422, "unknown-fulfilment")
    unshipped = await post(
        harness, f"/api/v1/orders/{order.id}/fulfilments/{order.fulfilments[0].id}/close"
    )
    assert_problem(unshipped, 409, "close-before-shipment")
    bad_body = await post(
        harness,
        f"/api/v1/orders/{order.id}/fulfilments/{order.fulfilments[0].id}/close",
        {"lines": []},
    )
    assert_problem(bad_body, 422, "validation-error")
    assert harness.state() == before


async def test_a_parcel_refuses_the_request_for_what_it_carries(harness: Harness) -> None:
    """The stub channel takes a refusal as a shipment (Cdiscount): shipping a line the
    customer asked to cancel refuses that part, in the shipment's own command."""
    order = await harness.seed(
        lines=TWO_LINES, released=True, cancellation={"id": "CR-1", "lines": [["a", 2]]}
    )
    assert (await post(harness, f"/api/v1/orders/{order.id}/accept")).status_code == 202
    shipped = await post(
        harness,
        f"/api/v1/orders/{order.id}/shipments",
        {
            "carrier": "dhl",
            "tracking_number": "T-1",
            "items": [{"line_id": line(order, "a"), "quantity": 2}],
        },
    )
    assert shipped.status_code == 202, shipped.text
    command = harness.db.commands[shipped.json()["command_id"]]
    [refused] = command.payload["refuses_cancellations"]
    assert refused["channel_cancellation_id"] == "CR-1"
    body = (await harness.client.get(f"/api/v1/orders/{order.id}", headers=auth("reader"))).json()
    assert [c["state"] for c in body["cancellations"]] == ["refused"]
    assert body["cancellation_requested"] is False
