"""Warehouse commands: the order change and ONE channel command in one commit, queued after."""

from __future__ import annotations

import pytest

from orderhub.application.ports import CommandKind, CommandState
from orderhub.application.services.common import (
    CONFLICT_RETRIES,
    Idempotency,
    IdempotencyKeyReused,
)
from orderhub.application.services.seller_commands import (
    accept_order,
    cancel_order,
    confirm_delivery,
    decide_cancellation,
    record_shipment,
    reject_order,
)
from orderhub.domain.errors import (
    ConcurrencyConflict,
    InvalidTransition,
    NotSupportedByChannel,
    OrderNotFound,
    TooManyUnits,
)
from orderhub.domain.values import Decision, LineQuantity, OrderStatus, Reason

from .support import World, line_ids, make_world, order_doc


def committed_once(world: World, before: int) -> None:
    assert world.db.commits == before + 1


async def test_accept_writes_the_order_and_one_command_then_queues_it() -> None:
    world = make_world("topi")
    order = await world.receive(order_doc())
    commits, feed = world.db.commits, len(world.db.feed)

    receipt = await accept_order(world.hub, order_id=order.id)

    committed_once(world, commits)
    [command] = world.commands()
    assert command.id == receipt.command_id
    assert command.kind is CommandKind.ACCEPT
    assert command.state is CommandState.PENDING
    assert command.order_id == order.id
    assert command.payload["whole_order"] is True
    assert {(i["line_id"], i["quantity"]) for i in command.payload["lines"]} == {
        (line_ids(order)["L1"], 2),
        (line_ids(order)["L2"], 1),
    }
    stored = world.order()
    assert stored.status is OrderStatus.READY_TO_SHIP
    assert stored.version == order.version + 1
    assert world.feed_types()[feed:] == ["order.accepted", "order.ready_to_ship"]
    assert world.queue.commands == [(command.id, 0)]  # CheckingQueue: committed first
    assert receipt.state == "pending"
    assert receipt.order_status == "ready_to_ship"
    assert receipt.kind == "accept"


async def test_reject_writes_and_queues() -> None:
    world = make_world("octopia")
    order = await world.receive(order_doc(status="WaitingAcceptance"))
    receipt = await reject_order(
        world.hub,
        order_id=order.id,
        reason=Reason.OUT_OF_STOCK,
        lines=[LineQuantity(line_id=line_ids(order)["L2"], quantity=1)],
    )
    [command] = world.commands()
    assert command.kind is CommandKind.REJECT
    assert command.payload["reason"] == "out_of_stock"
    assert command.payload["whole_order"] is False
    assert world.order().lines[1].rejected == 1
    assert world.queue.commands == [(receipt.command_id, 0)]


async def test_ship_writes_the_shipment_and_queues() -> None:
    world = make_world("spresso")
    order = await world.receive(order_doc(status="fulfillable"))
    commits = world.db.commits

    receipt = await record_shipment(
        world.hub,
        order_id=order.id,
        items=[LineQuantity(line_id=line_ids(order)["L1"], quantity=2)],
        carrier="ups",
        tracking_number="1Z",
    )

    committed_once(world, commits)
    [command] = world.commands()
    assert command.kind is CommandKind.SHIP
    assert command.payload["shipment_id"] == receipt.details["shipment_id"]
    assert command.payload["items"] == [
        {"line_id": line_ids(order)["L1"], "quantity": 2, "serial_numbers": []}
    ]
    stored = world.order()
    assert [s.id for s in stored.shipments] == [receipt.details["shipment_id"]]
    assert stored.status is OrderStatus.PARTIALLY_SHIPPED
    assert world.queue.commands == [(command.id, 0)]


async def test_deliver_writes_and_queues() -> None:
    world = make_world("spresso")
    order = await world.receive(order_doc(status="fulfillable"))
    ids = line_ids(order)
    await record_shipment(
        world.hub,
        order_id=order.id,
        items=[
            LineQuantity(line_id=ids["L1"], quantity=2),
            LineQuantity(line_id=ids["L2"], quantity=1),
        ],
    )
    world.queue.commands.clear()

    receipt = await confirm_delivery(world.hub, order_id=order.id)

    command = world.db.commands[receipt.command_id]
    assert command.kind is CommandKind.DELIVER
    assert world.order().status is OrderStatus.DELIVERED
    assert world.queue.commands == [(command.id, 0)]
    assert world.feed_types()[-1] == "order.delivered"


async def test_a_partial_delivery_is_stored_too() -> None:
    world = make_world("spresso")
    order = await world.receive(
        order_doc(
            status="fulfillable",
            fulfilments=[{"id": "F1"}, {"id": "F2"}],
            lines=[
                {"id": "L1", "title": "a", "quantity": 1, "fulfilment": "F1"},
                {"id": "L2", "title": "b", "quantity": 1, "fulfilment": "F2"},
            ],
        )
    )
    ids = line_ids(order)
    await record_shipment(
        world.hub, order_id=order.id, items=[LineQuantity(line_id=ids["L1"], quantity=1)]
    )
    f1 = next(f.id for f in order.fulfilments if f.channel_fulfilment_id == "F1")

    await confirm_delivery(world.hub, order_id=order.id, fulfilment_id=f1)

    assert world.order().lines[0].delivered == 1  # the change reached the database
    assert world.feed_types()[-1] == "order.updated"


async def test_cancel_writes_and_queues() -> None:
    world = make_world("octopia")
    order = await world.receive(order_doc(status="WaitingAcceptance"))
    await accept_order(world.hub, order_id=order.id)
    world.queue.commands.clear()

    receipt = await cancel_order(world.hub, order_id=order.id, reason=Reason.SELLER_REFUSAL)

    command = world.db.commands[receipt.command_id]
    assert command.kind is CommandKind.CANCEL
    assert command.payload["reason"] == "seller_refusal"
    assert command.payload["after_shipment"] is False
    assert command.payload["cancellation_id"] == receipt.details["cancellation_id"]
    assert world.order().status is OrderStatus.CANCELLED
    assert world.queue.commands == [(command.id, 0)]


async def test_decide_writes_and_queues() -> None:
    world = make_world("octopia")
    order = await world.receive(
        order_doc(
            status="CancelRequest",
            counters={"L1": {"accepted": 2}, "L2": {"accepted": 1}},
            cancellations=[{"id": "X1", "initiator": "customer", "reason": "customer_request"}],
        )
    )
    assert order.cancellation_requested

    receipt = await decide_cancellation(world.hub, order_id=order.id, decision=Decision.REFUSE)

    command = world.db.commands[receipt.command_id]
    assert command.kind is CommandKind.DECIDE_CANCELLATION
    assert command.payload == {
        "cancellation_id": order.cancellations[0].id,
        "channel_cancellation_id": "X1",
        "decision": "refuse",
        "lines": [],  # the whole request, as the channel sent it
        "refusal": "call",  # this channel takes a refusal by a call of its own
    }
    assert not world.order().cancellation_requested
    assert world.queue.commands == [(command.id, 0)]


async def test_a_refused_command_writes_nothing_and_queues_nothing() -> None:
    world = make_world("topi")
    order = await world.receive(order_doc())
    commits, feed, version = world.db.commits, len(world.db.feed), world.order().version

    with pytest.raises(NotSupportedByChannel) as caught:
        await cancel_order(world.hub, order_id=order.id, reason=Reason.CUSTOMER_REQUEST)
    assert caught.value.rule == "seller-cancellation-not-supported"
    with pytest.raises(TooManyUnits):
        await accept_order(
            world.hub,
            order_id=order.id,
            lines=[LineQuantity(line_id=line_ids(order)["L1"], quantity=3)],
        )

    assert world.db.commits == commits
    assert world.db.commands == {}
    assert len(world.db.feed) == feed
    assert world.order().version == version
    assert world.queue.commands == []


async def test_an_unknown_order_is_not_found() -> None:
    world = make_world("topi")
    with pytest.raises(OrderNotFound):
        await accept_order(world.hub, order_id="nope")


async def test_the_same_key_returns_the_same_receipt() -> None:
    world = make_world("topi")
    order = await world.receive(order_doc())
    key = Idempotency(key="k-1", fingerprint="accept:all")

    first = await accept_order(world.hub, order_id=order.id, idempotency=key)
    again = await accept_order(world.hub, order_id=order.id, idempotency=key)

    assert again == first
    assert len(world.db.commands) == 1
    assert world.queue.commands == [(first.command_id, 0)]  # the replay queues nothing


async def test_the_same_key_with_another_body_is_refused() -> None:
    world = make_world("topi")
    order = await world.receive(order_doc())
    await accept_order(
        world.hub, order_id=order.id, idempotency=Idempotency(key="k-1", fingerprint="a")
    )
    commits = world.db.commits

    with pytest.raises(IdempotencyKeyReused) as caught:
        await reject_order(
            world.hub,
            order_id=order.id,
            reason=Reason.OUT_OF_STOCK,
            idempotency=Idempotency(key="k-1", fingerprint="b"),
        )
    assert caught.value.rule == "idempotency-key-reused"
    assert world.db.commits == commits


async def test_a_refused_command_does_not_burn_its_key() -> None:
    world = make_world("topi")
    order = await world.receive(order_doc())
    key = Idempotency(key="k-1", fingerprint="reject")
    await accept_order(world.hub, order_id=order.id)
    with pytest.raises(InvalidTransition):
        await reject_order(world.hub, order_id=order.id, reason=Reason.OTHER, idempotency=key)
    assert "k-1" not in world.db.idempotency


async def test_a_concurrent_writer_makes_it_try_again_on_fresh_state() -> None:
    world = make_world("topi")
    order = await world.receive(order_doc())
    world.uow.races = 1  # someone else commits to the order between our read and our commit

    receipt = await accept_order(world.hub, order_id=order.id)

    assert world.uow.races == 0
    assert list(world.db.commands) == [receipt.command_id]  # the lost attempt left nothing
    assert world.order().status is OrderStatus.READY_TO_SHIP
    assert world.feed_types().count("order.accepted") == 1
    assert world.queue.commands == [(receipt.command_id, 0)]


async def test_a_writer_that_always_wins_surfaces_the_conflict() -> None:
    world = make_world("topi")
    order = await world.receive(order_doc())
    world.uow.races = CONFLICT_RETRIES

    with pytest.raises(ConcurrencyConflict):
        await accept_order(world.hub, order_id=order.id)

    assert world.db.commands == {}
    assert world.queue.commands == []
    assert world.order().status is OrderStatus.AWAITING_ACCEPTANCE
