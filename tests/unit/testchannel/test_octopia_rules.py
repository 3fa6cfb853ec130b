"""The test channel's ``octopia`` profile: capabilities per sales channel, pre-flight
refusals (reason code in CancelRequest, unknown carrier, second parcel, channel-fulfilled
line, per-line decisions), supply modes and the channel's own parcels."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orderhub.application.services.seller_commands import cancel_order, record_shipment
from orderhub.channels.spi import CommandKind, CommandRefused, CommandView
from orderhub.domain.capabilities import Scope
from orderhub.domain.errors import NotSupportedByChannel
from orderhub.domain.model import ChannelSnapshot, Order
from orderhub.domain.values import FulfilledBy, LineQuantity, OrderFulfilledBy, Reason
from orderhub.testing.channel import InvalidTestOrder, decode_orders, octopia_like, to_snapshot
from tests.unit.services.support import line_ids, make_world, order_doc

from .test_channel import NOW, account

SALES_CHANNELS: dict[str, Any] = {
    "CDISFR": {"line_level": True, "manual_acceptance": True, "one_parcel_per_order": True},
    "OCTOBE": {"line_level": False, "manual_acceptance": False},
}
SETTINGS: dict[str, Any] = {"sales_channels": SALES_CHANNELS, "carriers": ["Colissimo", "DHL "]}
ACCEPTED = {"L1": {"accepted": 2}, "L2": {"accepted": 1}}


def snapshot(**doc: Any) -> ChannelSnapshot:
    [parsed] = decode_orders(json.dumps(order_doc(**doc)).encode())
    return to_snapshot(parsed)


def test_capabilities_follow_the_orders_sales_channel() -> None:
    acct = account("octopia", **SETTINGS)
    cdiscount = acct.capabilities_for(snapshot(sales_channel="CDISFR"))
    assert (cdiscount.acceptance, cdiscount.rejection) == (Scope.LINE, Scope.LINE)
    assert cdiscount.shipment is Scope.ORDER  # one parcel per complete order
    assert cdiscount.cancellation_decision is Scope.LINE
    assert "one parcel per complete order" in cdiscount.explain("ship", "")

    belgium = acct.capabilities_for(snapshot(sales_channel="OCTOBE"))
    assert (belgium.acceptance, belgium.rejection) == (Scope.NONE, Scope.NONE)  # auto-accept
    assert (belgium.shipment, belgium.seller_cancellation) == (Scope.ORDER, Scope.ORDER)
    assert "auto-acceptance" in belgium.explain("accept", "")
    # what does not depend on the sales channel stays the profile's
    assert belgium.cancellation_reasons == octopia_like().cancellation_reasons
    assert acct.capabilities_for(snapshot()) == octopia_like()  # none named: the account's


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"sales_channels": ["CDISFR"]}, "sales_channels must map"),
        ({"sales_channels": {"CDISFR": {"line_levels": True}}}, "unknown setting 'line_levels'"),
        ({"sales_channels": {"CDISFR": {"line_level": "yes"}}}, "true or false"),
        ({"carriers": "DHL"}, "carriers is a list"),
    ],
)
def test_bad_sales_channel_settings_are_refused(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        account("octopia", **settings)


async def test_an_order_of_a_sales_channel_not_set_up_is_refused_at_intake() -> None:
    acct = account("octopia", **SETTINGS)
    body = json.dumps(order_doc(sales_channel="CDISDE")).encode()
    with pytest.raises(InvalidTestOrder, match="sales channel 'CDISDE' is not set up"):
        await acct.snapshots(body, {})


async def released_order(world: Any, **doc: Any) -> Any:
    fields: dict[str, Any] = {"status": "InPreparation", "released": True, "counters": ACCEPTED}
    return await world.receive(order_doc(**{**fields, **doc}))


async def test_the_order_keeps_its_sales_channels_capabilities() -> None:
    world = make_world("octopia", **SETTINGS)
    order = await world.receive(order_doc(status="WaitingAcceptance", sales_channel="CDISFR"))
    assert order.capabilities is not None
    assert order.capabilities.shipment is Scope.ORDER
    assert order.extras["sales_channel"] == "CDISFR"


async def test_an_unknown_carrier_is_refused_before_anything_is_queued() -> None:
    world = make_world("octopia", **SETTINGS)
    order = await released_order(world, sales_channel="OCTOBE")
    ids = line_ids(order)
    items = [
        LineQuantity(line_id=ids["L1"], quantity=2),
        LineQuantity(line_id=ids["L2"], quantity=1),
    ]
    with pytest.raises(CommandRefused) as refused:
        await record_shipment(
            world.hub, order_id=order.id, items=items, carrier="La Poste", tracking_number="P1"
        )
    assert (refused.value.rule, refused.value.status) == ("unknown-carrier", 422)
    assert world.commands() == []
    assert world.order().shipments == []  # rolled back

    # labels match trimmed and in any case (Octopia's list has "DHL " with a space)
    await record_shipment(
        world.hub, order_id=order.id, items=items, carrier="dhl", tracking_number="P1"
    )
    assert [c.kind for c in world.commands()] == [CommandKind.SHIP]


async def test_a_second_parcel_is_refused_on_a_one_parcel_sales_channel() -> None:
    world = make_world("octopia", **SETTINGS)
    order = await world.receive(
        order_doc(
            status="InPreparation",
            released=True,
            sales_channel="CDISFR",
            counters={"L1": {"accepted": 2}},  # L2 accepted later
        )
    )
    ids = line_ids(order)
    first = [LineQuantity(line_id=ids["L1"], quantity=2)]
    await record_shipment(world.hub, order_id=order.id, items=first, tracking_number="P1")
    await world.receive(
        order_doc(status="InPreparation", released=True, sales_channel="CDISFR", counters=ACCEPTED)
    )

    with pytest.raises(CommandRefused) as refused:
        await record_shipment(
            world.hub,
            order_id=order.id,
            items=[LineQuantity(line_id=ids["L2"], quantity=1)],
            tracking_number="P2",
        )
    assert (refused.value.rule, refused.value.status) == ("one-parcel-per-order", 409)
    assert "has one already (P1)" in str(refused.value)
    assert [c.kind for c in world.commands()] == [CommandKind.SHIP]
    assert [s.tracking_number for s in world.order().shipments] == ["P1"]


async def test_a_reason_code_is_refused_for_a_line_in_cancel_request() -> None:
    """The canonical status is unchanged by the customer's request; Octopia's line state is
    CancelRequest, where no seller code is allowed."""
    world = make_world("octopia")
    request = {
        "id": "CR-1",
        "initiator": "customer",
        "reason": "customer_request",
        "lines": [{"line": "L2", "quantity": 1}],
    }
    order = await released_order(world, status="CancelRequest", cancellations=[request])
    ids = line_ids(order)

    with pytest.raises(CommandRefused) as refused:
        await cancel_order(
            world.hub,
            order_id=order.id,
            reason=Reason.SELLER_REFUSAL,
            lines=[LineQuantity(line_id=ids["L2"], quantity=1)],
        )
    assert refused.value.rule == "cancellation-reason-not-allowed-in-channel-state"
    assert "seller-refusal is allowed only in Accepted, InPreparation" in str(refused.value)
    assert world.commands() == []
    assert world.order().lines[1].cancelled == 0

    # a line no request covers is in InPreparation: the code is allowed there
    await cancel_order(
        world.hub,
        order_id=order.id,
        reason=Reason.SELLER_REFUSAL,
        lines=[LineQuantity(line_id=ids["L1"], quantity=1)],
    )
    [command] = world.commands()
    assert command.kind is CommandKind.CANCEL


async def test_supply_modes_make_channel_fulfilled_lines_and_the_channel_ships_them() -> None:
    world = make_world("octopia")
    lines = [
        {"id": "L1", "title": "Phone", "quantity": 2, "supply_mode": "Seller"},
        {"id": "L2", "title": "Case", "quantity": 1, "supply_mode": "Fulfillment"},
    ]
    order = await released_order(world, lines=lines)
    by_channel = {f.channel_fulfilment_id: f.fulfilled_by for f in order.fulfilments}
    assert by_channel == {"Seller": FulfilledBy.SELLER, "Fulfillment": FulfilledBy.CHANNEL}
    assert order.fulfilled_by is OrderFulfilledBy.MIXED

    ids = line_ids(order)
    with pytest.raises(NotSupportedByChannel, match="fulfilled by the channel"):
        await record_shipment(
            world.hub, order_id=order.id, items=[LineQuantity(line_id=ids["L2"], quantity=1)]
        )
    # the adapter's own check says the same, should the domain ever let it through
    acct = world.account()
    payload = {"items": [{"line_id": ids["L2"], "quantity": 1}]}
    with pytest.raises(CommandRefused) as refused:
        acct.preflight(CommandKind.SHIP, payload, order, acct.capabilities)
    assert refused.value.rule == "channel-fulfilled-line"

    # the partner ships L2: the channel reports the parcel (twice: recorded once)
    parcel = {"number": "FBA-9", "carrier": "Colissimo", "tracking_url": "https://t/FBA-9"}
    shipped = [lines[0], {**lines[1], "parcels": [parcel]}]
    counters = {**ACCEPTED, "L2": {"accepted": 1, "shipped": 1}}
    for _ in range(2):
        await released_order(world, lines=shipped, counters=counters)
    [shipment] = world.order().shipments
    assert (shipment.channel_shipment_id, shipment.carrier) == ("FBA-9", "Colissimo")
    assert [(i.line_id, i.quantity) for i in shipment.items] == [(ids["L2"], 1)]


async def test_a_wholly_channel_fulfilled_order_is_never_ready_for_the_warehouse() -> None:
    world = make_world("octopia")
    lines = [{"id": "L1", "title": "Phone", "quantity": 1, "supply_mode": "Xdock"}]
    order = await released_order(world, lines=lines, counters={"L1": {"accepted": 1}})
    assert order.fulfilled_by is OrderFulfilledBy.CHANNEL
    assert "order.ready_to_ship" not in world.feed_types()


def test_supply_modes_and_fulfilments_do_not_mix() -> None:
    doc = order_doc(
        lines=[
            {"id": "L1", "title": "x", "quantity": 1, "supply_mode": "Seller", "fulfilment": "F1"}
        ],
    )
    [parsed] = decode_orders(json.dumps(doc).encode())
    with pytest.raises(InvalidTestOrder, match="supply modes or fulfilments, not both"):
        to_snapshot(parsed)


def test_a_per_line_decision_needs_a_line_level_sales_channel() -> None:
    """OCTOBE decides cancellation requests whole: the order's capabilities say so, and the
    core refuses a decision naming lines; a whole decision (its payload lists the lines the
    request named) passes the profile's pre-flight."""
    acct = account("octopia", **SETTINGS)
    caps = acct.capabilities_for(snapshot(status="InPreparation", sales_channel="OCTOBE"))
    assert caps.cancellation_decision is Scope.ORDER
    line_level = acct.capabilities_for(snapshot(status="InPreparation", sales_channel="CDISFR"))
    assert line_level.cancellation_decision is Scope.LINE
    snap = snapshot(status="InPreparation", released=True, sales_channel="OCTOBE")
    ids = iter(f"h{n}" for n in range(100))
    order = Order.receive(
        snap,
        order_id="O-1",
        channel="testchannel",
        account="main",
        caps=caps,
        now=NOW,
        new_id=lambda: next(ids),
    )
    whole = {"decision": "accept", "lines": [{"line_id": order.lines[0].id, "quantity": 1}]}
    acct.preflight(CommandKind.DECIDE_CANCELLATION, whole, order, caps)


async def test_a_shipment_answer_names_the_parcel_number_as_the_channels_id() -> None:
    world = make_world("octopia")
    order = await released_order(world)
    ids = line_ids(order)
    await record_shipment(
        world.hub,
        order_id=order.id,
        items=[LineQuantity(line_id=ids["L1"], quantity=1)],
        tracking_number="PARCEL-1",
    )
    [command] = world.commands()
    outcome = await world.account().execute(CommandView.of(command), world.order())
    assert outcome.channel_ids == {"shipment": "PARCEL-1"}
