"""Order stories between the hub (on its fakes) and the Spresso simulator over HTTP:
fulfilments shipped in parcels then in_transit, short ships, delivery, cancellations from
Foxtrot at every moment, refusals, a 5xx, a lost answer."""

from __future__ import annotations

import pytest
from spresso_hub import Story

from orderhub.application.ports import CommandState
from orderhub.application.services import seller_commands
from orderhub.domain.entities import AttentionCode
from orderhub.domain.errors import DomainError
from orderhub.domain.values import Initiator, OrderStatus, Reason
from orderhub_spresso.plugin import CAPABILITIES
from orderhub_spresso.simulator.control import TWO_FULFILMENTS

COFFEE, MUG = 2400, 1200


async def test_two_fulfilments_in_three_parcels_the_same_variant_in_both(story: Story) -> None:
    sid = await story.place(TWO_FULFILMENTS)
    order = story.order(sid)
    assert order.status is OrderStatus.READY_TO_SHIP
    assert order.order_number == str((await story.driver.order(sid))["orderNo"])
    spresso = await story.driver.order(sid)
    f1, f2 = (f["id"] for f in spresso["fulfillments"])

    await story.ship(sid, 0, [(0, 1)], "1Z001")
    assert story.order(sid).status is OrderStatus.PARTIALLY_SHIPPED
    await story.ship(sid, 0, [(0, 1), (1, 1)], "1Z002")
    await story.ship(sid, 1, [(0, 1)], "1Z003")

    assert await story.spresso_calls(sid) == [
        ("ship", f1, "200"),
        ("ship", f1, "200"),
        ("close_fulfilment", f1, "200"),
        ("ship", f2, "200"),
        ("close_fulfilment", f2, "200"),
    ]
    spresso = await story.driver.order(sid)
    parcels = {
        f: [(p["trackingNumber"], p["carrier"], p["shipmentVariants"]) for p in found]
        for f, found in spresso["_shipments"].items()
    }
    beans, mug = (v["variant"]["id"] for v in spresso["orderVariants"])
    assert parcels == {
        f1: [
            ("1Z001", "ups", [{"variant": beans, "quantity": 1}]),
            ("1Z002", "ups", [{"variant": beans, "quantity": 1}, {"variant": mug, "quantity": 1}]),
        ],
        f2: [("1Z003", "ups", [{"variant": beans, "quantity": 1}])],
    }
    assert [len(spresso["_shipments"][f]) for f in (f1, f2)] == [2, 1]
    assert spresso["_settlement"] == {"settlements": 2, "charged": 3 * COFFEE + MUG}
    assert spresso["status"] == "in_transit"
    order = story.order(sid)
    assert (order.status, order.channel_status) == (OrderStatus.SHIPPED, "in_transit")

    await story.deliver(sid, 0)
    assert (await story.driver.order(sid))["fulfillments"][0]["status"] == "delivered"
    await story.deliver(sid, 1)
    order = story.order(sid)
    assert (order.status, order.channel_status) == (OrderStatus.DELIVERED, "delivered")
    assert all(c.state is CommandState.SUCCEEDED for c in story.rig.commands(order))


async def test_a_short_ship_charges_only_what_shipped_and_cancels_the_rest(story: Story) -> None:
    sid = await story.place(TWO_FULFILMENTS)
    await story.ship(sid, 0, [(0, 1)], "1Z010", final=True)  # one coffee of two, no mug

    spresso = await story.driver.order(sid)
    f1 = spresso["fulfillments"][0]
    assert f1["status"] == "in_transit"
    assert sorted((v["quantity"], v["fulfilledQuantity"]) for v in f1["fulfillmentVariants"]) == [
        (1, 0),
        (2, 1),
    ]
    assert spresso["_settlement"] == {"settlements": 1, "charged": COFFEE}
    order = story.order(sid)
    lines = story.lines(sid, 0)
    assert [(ln.shipped, ln.cancelled) for ln in lines] == [(1, 1), (0, 1)]
    (short,) = [c for c in order.cancellations if c.initiator is Initiator.SELLER]
    assert short.reason is Reason.OUT_OF_STOCK
    assert order.status is OrderStatus.PARTIALLY_SHIPPED  # the second fulfilment is open


async def test_a_fulfilment_closed_short_sends_nothing_for_the_close(story: Story) -> None:
    sid = await story.place(TWO_FULFILMENTS)
    f2 = (await story.driver.order(sid))["fulfillments"][1]["id"]
    with pytest.raises(DomainError, match="cancel it instead"):
        await story.close(sid, 1)  # nothing shipped: Spresso's console cancels it
    await story.ship(sid, 0, [(0, 2)], "1Z020")
    await story.close(sid, 0)
    calls = await story.spresso_calls(sid)
    assert [kind for kind, _, _ in calls] == ["ship", "close_fulfilment"]
    assert f2 not in {fid for _, fid, _ in calls}
    cancel = [c for c in story.rig.commands(story.order(sid)) if c.kind.value == "cancel"]
    assert [(c.state, c.result.get("sent")) for c in cancel] == [(CommandState.SUCCEEDED, False)]
    assert (await story.driver.order(sid))["_settlement"]["charged"] == 2 * COFFEE


async def test_a_cancellation_before_the_order_is_fulfillable_never_reaches_the_hub(
    story: Story,
) -> None:
    created = await story.driver.control("POST", "/_sim/orders", TWO_FULFILMENTS)
    await story.driver.control("POST", f"/_sim/orders/{created['id']}/cancel")
    await story.driver.control("POST", "/_sim/tick", {"force": True})
    assert await story.driver.messages(created["id"]) == []
    assert story.rig.find(created["id"]) is None


async def test_a_cancellation_before_shipping_cancels_and_refuses_shipments(story: Story) -> None:
    sid = await story.place(TWO_FULFILMENTS)
    await story.driver.move_to(sid, "cancelled")
    await story.rig.settle(sid)
    order = story.order(sid)
    assert (order.status, order.channel_status) == (OrderStatus.CANCELLED, "cancelled")
    (c,) = order.cancellations
    assert (c.initiator, c.reason) == (Initiator.CHANNEL, Reason.CHANNEL_CANCELLED)
    with pytest.raises(DomainError):
        await story.ship(sid, 0, [(0, 1)], "1Z030")
    assert await story.spresso_calls(sid) == []


async def test_a_cancellation_after_in_transit_is_recorded_and_nothing_is_undone(
    story: Story,
) -> None:
    sid = await story.place(TWO_FULFILMENTS)
    await story.ship(sid, 0, [(0, 2), (1, 1)], "1Z040")
    before = await story.spresso_calls(sid)
    await story.driver.move_to(sid, "cancelled")
    await story.rig.settle(sid)
    order = story.order(sid)
    shipped = story.lines(sid, 0)
    assert [ln.shipped for ln in shipped] == [2, 1]  # nothing undone
    (cancelled,) = order.cancellations
    assert (cancelled.initiator, cancelled.reason) == (Initiator.CHANNEL, Reason.CHANNEL_CANCELLED)
    assert story.lines(sid, 1)[0].cancelled == 1  # the fulfilment not yet shipped
    assert await story.spresso_calls(sid) == before  # nothing sent for it
    # a person must look: the shipped units are on their way, nothing is undone
    assert [a.code for a in order.attention] == [AttentionCode.CANCELLED_AFTER_SHIPMENT]
    assert order.returns == []


async def test_a_late_fulfillable_does_not_reopen_a_cancelled_order(story: Story) -> None:
    sid = await story.driver.create_order(TWO_FULFILMENTS)
    await story.driver.move_to(sid, "cancelled")
    fulfillable, cancelled = await story.driver.messages(sid)
    await story.rig.deliver([cancelled])  # reordered: the cancellation first
    order = story.order(sid)
    assert order.status is OrderStatus.CANCELLED
    feed = [(e.type, e.data) for e in story.rig.feed(order)]
    await story.rig.deliver([fulfillable, fulfillable, cancelled])  # late, and duplicates
    await story.rig.deliver([fulfillable], again=True)  # the same, under a new key
    order = story.order(sid)
    assert order.status is OrderStatus.CANCELLED
    assert [(e.type, e.data) for e in story.rig.feed(order)] == feed
    assert [e[0] for e in feed].count("order.received") == 1


@pytest.mark.parametrize("kind", ["accept", "reject", "cancel"])
async def test_wms_accept_reject_and_cancel_are_refused_with_what_to_do(
    story: Story, kind: str
) -> None:
    sid = await story.place(TWO_FULFILMENTS)
    order = story.order(sid)
    hub = story.rig.hub
    calls = {
        "accept": lambda: seller_commands.accept_order(hub, order_id=order.id),
        "reject": lambda: seller_commands.reject_order(
            hub, order_id=order.id, reason=Reason.OUT_OF_STOCK
        ),
        "cancel": lambda: seller_commands.cancel_order(
            hub, order_id=order.id, reason=Reason.OUT_OF_STOCK
        ),
    }
    with pytest.raises(DomainError) as refused:
        await calls[kind]()
    assert CAPABILITIES.refusals[kind] in refused.value.detail
    assert story.rig.commands(story.order(sid)) == []


async def test_a_5xx_is_retried_and_the_parcel_is_sent_once(story: Story) -> None:
    sid = await story.place(TWO_FULFILMENTS)
    await story.driver.control(
        "POST", "/_sim/faults", {"path": "/v1/fulfillments/*/shipments", "status": 503}
    )
    receipt = await story.ship(sid, 1, [(0, 1)], "1Z050")
    calls = await story.spresso_calls(sid)
    assert [(k, s) for k, _, s in calls] == [
        ("ship", "503"),
        ("ship", "200"),
        ("close_fulfilment", "200"),
    ]
    command = story.rig.uow.db.commands[receipt.command_id]
    assert (command.state, command.attempts) == (CommandState.SUCCEEDED, 2)
    spresso = await story.driver.order(sid)
    assert len(spresso["_shipments"][spresso["fulfillments"][1]["id"]]) == 1


async def test_a_4xx_fails_the_command_with_spressos_message(story: Story) -> None:
    sid = await story.place(TWO_FULFILMENTS)
    body = {"message": "carrierReferenceId is not valid for ups"}
    await story.driver.control(
        "POST",
        "/_sim/faults",
        {"path": "/v1/fulfillments/*/shipments", "status": 400, "body": body},
    )
    receipt = await story.ship(sid, 1, [(0, 1)], "1Z060")
    command = story.rig.uow.db.commands[receipt.command_id]
    assert command.state is CommandState.FAILED
    assert command.last_error == "spresso: carrierReferenceId is not valid for ups"
    assert command.attempts == 1


async def test_a_lost_answer_to_in_transit_settles_once(story: Story) -> None:
    """The first in_transit reaches Spresso but its answer is lost (a timeout): the retry
    carries the same Idempotency-Key (the command id); Spresso settles once."""
    sid = await story.place(TWO_FULFILMENTS)
    f2 = (await story.driver.order(sid))["fulfillments"][1]["id"]
    await story.driver.control(
        "POST", "/_sim/faults", {"path": f"/v1/fulfillments/{f2}", "method": "PUT", "delay": 3}
    )
    await story.ship(sid, 1, [(0, 1)], "1Z070")
    calls = [c for c in await story.spresso_calls(sid) if c[0] == "close_fulfilment"]
    assert len(calls) == 2  # the lost one and the retry
    spresso = await story.driver.order(sid)
    assert spresso["_settlement"]["settlements"] == 1
    history = [h["status"] for h in spresso["fulfillments"][1]["statusHistory"]]
    assert history.count("in_transit") == 1
    close = [c for c in story.rig.commands(story.order(sid)) if c.kind.value == "close_fulfilment"]
    assert [(c.state, c.attempts) for c in close] == [(CommandState.SUCCEEDED, 2)]


async def test_an_unknown_carrier_is_refused_before_anything_is_sent(story: Story) -> None:
    sid = await story.place(TWO_FULFILMENTS)
    with pytest.raises(DomainError, match="does not know carrier 'pigeon'") as refused:
        await story.ship(sid, 0, [(0, 1)], "1Z080", carrier="pigeon")
    assert refused.value.rule == "unknown-carrier"
    assert story.rig.commands(story.order(sid)) == []
