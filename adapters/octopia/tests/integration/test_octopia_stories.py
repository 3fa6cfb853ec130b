"""Octopia orders through the hub, the adapter talking HTTP to the simulator: every state,
the commands and Octopia's refusals, customer cancellation requests, invoices."""

from __future__ import annotations

import pytest
from octopia_rig import OctopiaRig

from orderhub.application.ports import CommandState
from orderhub.application.services import invoices, seller_commands
from orderhub.domain.errors import DomainError
from orderhub.domain.values import (
    Decision,
    LineQuantity,
    OrderFulfilledBy,
    OrderStatus,
    Reason,
    RequestState,
)
from orderhub_octopia.simulator import SimulatorControl

PDF = b"%PDF-1.4 invoice"


def writes(sim: SimulatorControl, order_id: str) -> list[str]:
    return [
        f"{c['method']} {c['path']} {c['status_code']}"
        for c in sim.calls(method="POST")
        if order_id in c["path"] or order_id in c["body"]
    ]


async def ready(rig: OctopiaRig, sim: SimulatorControl, **spec: object) -> str:
    order_id = str(sim.create_order(**spec)["orderId"])
    order = await rig.polled(order_id)
    if order.status is OrderStatus.AWAITING_ACCEPTANCE:
        await seller_commands.accept_order(rig.hub, order_id=order.id)
        await rig.settle(order_id)
    sim.move(order_id, "pay")
    assert (await rig.polled(order_id)).status is OrderStatus.READY_TO_SHIP
    return order_id


async def decide_all(rig: OctopiaRig, order_id: str, decision: Decision) -> None:
    """Decide every open request (Octopia opens one per line where lines are managed)."""
    for request in list(rig.order(order_id).cancellations):
        await seller_commands.decide_cancellation(
            rig.hub,
            order_id=rig.order(order_id).id,
            decision=decision,
            cancellation_id=request.id,
        )
        await rig.settle(order_id)


async def ship_all(rig: OctopiaRig, order_id: str, carrier: str = "Colissimo") -> None:
    order = rig.order(order_id)
    items = [
        LineQuantity(line_id=ln.id, quantity=ln.unshipped)
        for ln in order.leaf_lines
        if ln.unshipped and ln.extras.get("supply_mode") == "Seller"
    ]
    await seller_commands.record_shipment(
        rig.hub,
        order_id=order.id,
        items=items,
        carrier=carrier,
        tracking_number=f"PN{order_id}",
        tracking_url=f"https://track.example/{order_id}",
    )
    await rig.settle(order_id)


async def test_a_cdiscount_order_is_polled_accepted_shipped_and_delivered(
    rig: OctopiaRig, sim: SimulatorControl
) -> None:
    order_id = str(
        sim.create_order(sales_channel="CDISFR", lines=[{"quantity": 2, "price": 12.5}, {}])[
            "orderId"
        ]
    )
    order = await rig.polled(order_id)
    assert (order.status, order.channel_status) == (
        OrderStatus.AWAITING_ACCEPTANCE,
        "WaitingAcceptance",
    )
    assert order.extras["sales_channel"] == "CDISFR"
    assert order.ship_by is not None
    first = order.lines[0]
    assert first.unit_price is not None
    assert first.unit_price.gross.amount == 1250
    assert first.extras["commission_with_vat"] == 188
    assert first.extras["shipping_cost"] == 490
    assert order.capabilities is not None
    assert order.capabilities.shipment.value == "order"
    assert await rig.poll() == 0  # a page read again stores nothing

    await seller_commands.accept_order(rig.hub, order_id=order.id)
    await rig.settle(order_id)
    assert sim.order(order_id)["status"] == "Accepted"
    assert rig.order(order_id).status is OrderStatus.ACCEPTED  # not released before payment

    sim.move(order_id, "pay")
    assert (await rig.polled(order_id)).status is OrderStatus.READY_TO_SHIP
    await ship_all(rig, order_id)
    assert sim.order(order_id)["status"] == "Shipped"
    assert rig.order(order_id).status is OrderStatus.SHIPPED
    sim.move(order_id, "deliver")
    order = await rig.polled(order_id)
    assert (order.status, order.channel_status) == (OrderStatus.DELIVERED, "Delivered")
    assert len(order.shipments) == 1
    assert order.shipments[0].tracking_number == f"PN{order_id}"
    assert writes(sim, order_id) == [
        f"POST /orders/{order_id}/approval-status 204",
        f"POST /orders/{order_id}/shipments 201",
    ]


async def test_a_refused_order_is_rejected(rig: OctopiaRig, sim: SimulatorControl) -> None:
    order_id = str(sim.create_order(sales_channel="OCTOBE")["orderId"])
    order = await rig.polled(order_id)
    await seller_commands.reject_order(rig.hub, order_id=order.id, reason=Reason.OUT_OF_STOCK)
    await rig.settle(order_id)
    assert sim.order(order_id)["status"] == "Refused"
    assert (await rig.polled(order_id)).status is OrderStatus.REJECTED


async def test_auto_accepted_orders_offer_no_acceptance(
    rig: OctopiaRig, sim: SimulatorControl
) -> None:
    order_id = str(sim.create_order(sales_channel="AUTOFR")["orderId"])
    order = await rig.polled(order_id)
    assert (order.status, order.channel_status) == (OrderStatus.ACCEPTED, "Accepted")
    with pytest.raises(DomainError):
        await seller_commands.accept_order(rig.hub, order_id=order.id)
    assert writes(sim, order_id) == []


async def test_the_one_parcel_rule_and_an_unknown_carrier_are_refused_before_any_call(
    rig: OctopiaRig, sim: SimulatorControl
) -> None:
    order_id = await ready(rig, sim, sales_channel="CDISFR", lines=[{}, {}])
    await rig.octopia.load_carriers()
    order = rig.order(order_id)
    before = writes(sim, order_id)
    one = [LineQuantity(line_id=order.lines[0].id, quantity=1)]
    with pytest.raises(DomainError, match="whole orders"):
        await seller_commands.record_shipment(
            rig.hub, order_id=order.id, items=one, carrier="UPS", tracking_number="P1"
        )
    every = [LineQuantity(line_id=ln.id, quantity=1) for ln in order.lines]
    with pytest.raises(DomainError, match="Chronopost, Colissimo") as refused:
        await seller_commands.record_shipment(
            rig.hub, order_id=order.id, items=every, carrier="Pigeon", tracking_number="P1"
        )
    assert refused.value.rule == "unknown-carrier"
    assert writes(sim, order_id) == before
    await ship_all(rig, order_id, carrier="dhl")  # a unique code names its carrier
    assert sim.order(order_id)["lines"][0]["parcels"][0]["carrierName"] == "DHL "


async def test_a_fulfillment_line_is_never_the_warehouses(
    rig: OctopiaRig, sim: SimulatorControl
) -> None:
    order_id = await ready(
        rig, sim, sales_channel="OCTOBE", lines=[{}, {"supply_mode": "Fulfillment"}]
    )
    order = rig.order(order_id)
    assert order.fulfilled_by is OrderFulfilledBy.MIXED
    theirs = order.lines[1]
    with pytest.raises(DomainError) as refused:
        await seller_commands.record_shipment(
            rig.hub,
            order_id=order.id,
            items=[LineQuantity(line_id=theirs.id, quantity=1)],
            carrier="UPS",
            tracking_number="X1",
        )
    assert refused.value.rule == "channel-fulfilled-line"
    with pytest.raises(DomainError, match="fulfilled by the channel"):
        await seller_commands.cancel_order(rig.hub, order_id=order.id, reason=Reason.SELLER_REFUSAL)
    sim.move(order_id, "fulfil")
    order = await rig.polled(order_id)
    assert rig.order(order_id).line(theirs.id).shipped == 1
    assert [s.tracking_number for s in order.shipments] == [f"FUL{order_id}"]
    assert writes(sim, order_id) == [f"POST /orders/{order_id}/approval-status 204"]


async def test_a_reason_code_is_refused_in_the_wrong_state_before_anything_is_sent(
    rig: OctopiaRig, sim: SimulatorControl
) -> None:
    order_id = str(sim.create_order(sales_channel="OCTOBE", lines=[{}, {}])["orderId"])
    order = await rig.polled(order_id)
    await seller_commands.accept_order(rig.hub, order_id=order.id)
    await rig.settle(order_id)
    with pytest.raises(DomainError):
        await seller_commands.cancel_order(rig.hub, order_id=order.id, reason=Reason.DAMAGED)
    assert writes(sim, order_id) == [f"POST /orders/{order_id}/approval-status 204"]
    await seller_commands.cancel_order(rig.hub, order_id=order.id, reason=Reason.SELLER_REFUSAL)
    await rig.settle(order_id)
    assert sim.order(order_id)["status"] == "Cancelled"
    order = await rig.polled(order_id)
    assert order.status is OrderStatus.CANCELLED
    assert len(order.cancellations) == 1  # the echo merged with the seller's own


async def test_a_customer_request_accepted_cancels_the_lines(
    rig: OctopiaRig, sim: SimulatorControl
) -> None:
    order_id = await ready(rig, sim, sales_channel="CDISFR", lines=[{}, {}])
    sim.move(order_id, "cancel-request")
    order = await rig.polled(order_id)
    assert order.cancellation_requested
    assert order.status is OrderStatus.READY_TO_SHIP
    await decide_all(rig, order_id, Decision.ACCEPT)
    details = sim.order(order_id)["cancellationDetails"]
    assert [d["status"] for d in details] == ["Accepted"]  # Cdiscount: one, whole order
    order = await rig.polled(order_id)
    assert order.status is OrderStatus.CANCELLED
    assert [c.state for c in order.cancellations] == [RequestState.ACCEPTED]


async def test_a_customer_request_refused_by_shipping_on_cdiscount(
    rig: OctopiaRig, sim: SimulatorControl
) -> None:
    order_id = await ready(rig, sim, sales_channel="CDISFR", lines=[{}, {}])
    sim.move(order_id, "cancel-request")
    order = await rig.polled(order_id)
    await decide_all(rig, order_id, Decision.REFUSE)
    assert writes(sim, order_id)[-1].endswith("approval-status 204")  # the refusal sent nothing
    await ship_all(rig, order_id)
    details = sim.order(order_id)["cancellationDetails"]
    assert [d["status"] for d in details] == ["Rejected"]
    order = await rig.polled(order_id)
    assert order.status is OrderStatus.SHIPPED
    assert not order.cancellation_requested
    assert [c.state for c in order.cancellations] == [RequestState.REFUSED]


async def test_a_refusal_is_refused_where_the_channel_cannot_ship_it(
    rig: OctopiaRig, sim: SimulatorControl
) -> None:
    order_id = await ready(rig, sim, sales_channel="OCTOBE", lines=[{}])
    sim.move(order_id, "cancel-request")
    order = await rig.polled(order_id)
    with pytest.raises(DomainError, match="no refusal") as refused:
        await seller_commands.decide_cancellation(
            rig.hub, order_id=order.id, decision=Decision.REFUSE
        )
    assert refused.value.rule == "octopia-refusal-not-allowed"


async def test_a_request_the_marketplace_rejects_resets_the_line(
    rig: OctopiaRig, sim: SimulatorControl
) -> None:
    order_id = await ready(rig, sim, sales_channel="OCTOBE", lines=[{}, {}])
    [request] = sim.move(order_id, "cancel-request", lines=["L1"])
    order = await rig.polled(order_id)
    assert order.cancellation_requested
    sim.decide_request(order_id, request["cancellationRequestId"], accept=False)
    order = await rig.polled(order_id)
    assert not order.cancellation_requested
    assert order.status is OrderStatus.READY_TO_SHIP
    assert [c.state for c in order.cancellations] == [RequestState.REFUSED]
    assert all(ln.cancelled == 0 for ln in order.lines)


async def test_a_channel_cancellation_and_failed_controls(
    rig: OctopiaRig, sim: SimulatorControl
) -> None:
    order_id = await ready(rig, sim, sales_channel="OCTOBE")
    sim.move(order_id, "cancel")
    assert (await rig.polled(order_id)).status is OrderStatus.CANCELLED
    other = str(sim.create_order(sales_channel="OCTOBE", processing=True)["orderId"])
    await rig.poll()
    assert rig.find(other) is None  # Processing: not the seller's yet
    sim.move(other, "fail-controls")
    order = await rig.polled(other)
    assert (order.status, order.channel_status) == (OrderStatus.CANCELLED, "Rejected")


@pytest.mark.parametrize(("content", "state"), [(PDF, "accepted"), (PDF + b" REJECT", "rejected")])
async def test_an_invoice_is_decided_by_the_asynchronous_report(
    rig: OctopiaRig, sim: SimulatorControl, content: bytes, state: str
) -> None:
    order_id = await ready(rig, sim, sales_channel="CDISFR")
    order = rig.order(order_id)
    await invoices.record_invoice(
        rig.hub, order_id=order.id, number="F-1", content=content, content_type="application/pdf"
    )
    await rig.settle(order_id)
    assert rig.order(order_id).invoices[0].state.value == "sent"
    for _ in range(3):  # the report is pending at first, then final
        rig.clock.current = rig.clock.current.replace(year=rig.clock.current.year + 1)
        await invoices.check_invoices(rig.hub)
    invoice = rig.order(order_id).invoices[0]
    assert invoice.state.value == state
    if state == "rejected":
        assert "amounts do not match" in (invoice.channel_reason or "")
    commands = rig.commands(rig.order(order_id))
    assert all(c.state is CommandState.SUCCEEDED for c in commands)
