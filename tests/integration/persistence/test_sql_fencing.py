"""Fencing on SQL: a worker whose lease ran out, and whose command or message another worker
claimed meanwhile, writes nothing when its call (or mapping) finally returns.

Worker A claims and waits in the channel call (the test channel holds it); the clock moves
past the lease; worker B claims (``fence`` 2), gets its own outcome and records it; then A's
call returns with an outcome of its own, which must be dropped: the row stays as B wrote
it, the feed keeps exactly one ``command.*`` event for it, and A's job answers ``stale``.
Every combination of outcomes is tried (success, permanent and transient failure), on
SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from enum import StrEnum

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.integration.persistence.pipeline_support import (
    ACCOUNT,
    CHANNEL,
    WAIT_SECONDS,
    HeldIntake,
    World,
    make_world,
    order_body,
)

from orderhub.application.ports import CommandState, InboxState
from orderhub.application.services.dispatch import Dispatched, dispatch_command
from orderhub.application.services.intake import Processed, process_message, store_message
from orderhub.application.services.queries import get_order
from orderhub.application.services.seller_commands import accept_order
from orderhub.channels.spi import PermanentChannelError, TransientChannelError
from orderhub.domain.values import OrderStatus
from orderhub.testing.channel import InvalidTestOrder


class Outcome(StrEnum):
    SUCCESS = "success"
    PERMANENT = "permanent"
    TRANSIENT = "transient"


def plan_call(world: World, outcome: Outcome) -> None:
    """What the next call to the channel answers."""
    if outcome is Outcome.PERMANENT:
        world.account.fail_next(PermanentChannelError("the channel refused", status=400))
    elif outcome is Outcome.TRANSIENT:
        world.account.fail_next(TransientChannelError("the channel is busy", status=503))


B_RESULT = {
    Outcome.SUCCESS: Dispatched.SUCCEEDED,
    Outcome.PERMANENT: Dispatched.FAILED,
    Outcome.TRANSIENT: Dispatched.RETRY,
}
B_STATE = {
    Outcome.SUCCESS: CommandState.SUCCEEDED,
    Outcome.PERMANENT: CommandState.FAILED,
    Outcome.TRANSIENT: CommandState.PENDING,
}
B_EVENTS = {
    Outcome.SUCCESS: ["command.succeeded"],
    Outcome.PERMANENT: ["command.failed"],
    Outcome.TRANSIENT: [],
}


@pytest.mark.parametrize(
    ("b_outcome", "a_outcome"),
    [
        (Outcome.SUCCESS, Outcome.SUCCESS),
        (Outcome.SUCCESS, Outcome.PERMANENT),
        (Outcome.SUCCESS, Outcome.TRANSIENT),
        (Outcome.PERMANENT, Outcome.SUCCESS),
        (Outcome.TRANSIENT, Outcome.SUCCESS),
        (Outcome.TRANSIENT, Outcome.PERMANENT),
    ],
)
async def test_a_dispatch_whose_lease_ran_out_records_nothing(
    engine: AsyncEngine, b_outcome: Outcome, a_outcome: Outcome
) -> None:
    world = make_world(engine)
    order_id = await world.receive()
    command_id = (await accept_order(world.hub, order_id=order_id)).command_id
    lease = world.hub.retry.lease_seconds

    gate_a = world.account.hold_calls()
    worker_a = asyncio.create_task(dispatch_command(world.hub, command_id))
    await asyncio.wait_for(world.account.wait_for_calls(1), WAIT_SECONDS)
    claimed_a = await world.command(command_id)
    assert (claimed_a.fence, claimed_a.attempts) == (1, 1)

    world.clock.advance(lease - 1)
    assert await dispatch_command(world.hub, command_id) is Dispatched.LEASED  # not yet
    world.clock.advance(2)  # A's lease ran out: B claims

    gate_b = world.account.hold_calls()  # A keeps waiting on its own gate
    worker_b = asyncio.create_task(dispatch_command(world.hub, command_id))
    await asyncio.wait_for(world.account.wait_for_calls(2), WAIT_SECONDS)
    plan_call(world, b_outcome)
    gate_b.set()
    assert await asyncio.wait_for(worker_b, WAIT_SECONDS) is B_RESULT[b_outcome]
    as_b_wrote = await world.command(command_id)
    events_b = await world.command_events(command_id)
    order_b = (await get_order(world.hub, order_id)).order
    assert as_b_wrote.state is B_STATE[b_outcome]
    assert (as_b_wrote.fence, as_b_wrote.attempts) == (2, 2)

    world.clock.advance(7)  # anything A wrote would carry a later time
    plan_call(world, a_outcome)
    gate_a.set()
    assert await asyncio.wait_for(worker_a, WAIT_SECONDS) is Dispatched.STALE

    assert await world.command(command_id) == as_b_wrote  # not one field changed
    events = await world.command_events(command_id)
    assert [e.type for e in events] == B_EVENTS[b_outcome]
    assert events == events_b
    order = (await get_order(world.hub, order_id)).order
    assert (order.status, order.version, order.needs_attention) == (
        order_b.status,
        order_b.version,
        order_b.needs_attention,
    )
    if b_outcome is Outcome.SUCCESS:  # A's refusal did not undo B's accepted decision
        assert order.status is OrderStatus.READY_TO_SHIP
    assert [c.command_id for c in world.account.calls] == [command_id, command_id]
    # only B's outcome was queued for more: a retry (B transient), nothing else
    queued = [delay for cid, delay in world.queue.commands if cid == command_id]
    assert len(queued) == (2 if b_outcome is Outcome.TRANSIENT else 1)


async def test_a_stale_dispatch_does_not_end_a_command_another_worker_still_holds(
    engine: AsyncEngine,
) -> None:
    """B claimed after A's lease ran out and is itself still in the call when A's answer
    comes: A writes nothing, B's lease stands, and B's outcome is the one recorded."""
    world = make_world(engine)
    order_id = await world.receive()
    command_id = (await accept_order(world.hub, order_id=order_id)).command_id

    gate_a = world.account.hold_calls()
    worker_a = asyncio.create_task(dispatch_command(world.hub, command_id))
    await asyncio.wait_for(world.account.wait_for_calls(1), WAIT_SECONDS)
    world.clock.advance(world.hub.retry.lease_seconds + 1)
    gate_b = world.account.hold_calls()
    worker_b = asyncio.create_task(dispatch_command(world.hub, command_id))
    await asyncio.wait_for(world.account.wait_for_calls(2), WAIT_SECONDS)
    held_by_b = await world.command(command_id)

    world.account.fail_next(PermanentChannelError("the channel refused", status=400))
    gate_a.set()
    assert await asyncio.wait_for(worker_a, WAIT_SECONDS) is Dispatched.STALE
    assert await world.command(command_id) == held_by_b  # still pending, B's lease
    assert await world.command_events(command_id) == []
    assert (await get_order(world.hub, order_id)).order.status is OrderStatus.READY_TO_SHIP

    gate_b.set()
    assert await asyncio.wait_for(worker_b, WAIT_SECONDS) is Dispatched.SUCCEEDED
    done = await world.command(command_id)
    assert (done.state, done.fence, done.attempts) == (CommandState.SUCCEEDED, 2, 2)
    assert [e.type for e in await world.command_events(command_id)] == ["command.succeeded"]


# --- the inbox --------------------------------------------------------------------------


def plan_mapping(world: World, outcome: Outcome) -> None:
    if outcome is Outcome.PERMANENT:
        world.account.fail_next_intake(InvalidTestOrder("unreadable after all"))
    elif outcome is Outcome.TRANSIENT:
        world.account.fail_next_intake(TransientChannelError("the channel is busy"))


P_RESULT = {
    Outcome.SUCCESS: Processed.PROCESSED,
    Outcome.PERMANENT: Processed.FAILED,
    Outcome.TRANSIENT: Processed.RETRY,
}
P_STATE = {
    Outcome.SUCCESS: InboxState.PROCESSED,
    Outcome.PERMANENT: InboxState.FAILED,
    Outcome.TRANSIENT: InboxState.RECEIVED,
}


@pytest.mark.parametrize(
    ("b_outcome", "a_outcome"),
    [
        (Outcome.SUCCESS, Outcome.SUCCESS),
        (Outcome.SUCCESS, Outcome.PERMANENT),
        (Outcome.SUCCESS, Outcome.TRANSIENT),
        (Outcome.PERMANENT, Outcome.SUCCESS),
        (Outcome.TRANSIENT, Outcome.SUCCESS),
    ],
)
async def test_a_message_processing_whose_lease_ran_out_writes_nothing(
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
    b_outcome: Outcome,
    a_outcome: Outcome,
) -> None:
    """The same on ``inbox_messages``: A maps the message (held), its lease runs out, B
    claims and ends it; A's mapping then returns and A must neither apply the order nor
    mark the message (processed, failed or retried)."""
    world = make_world(engine)
    intake = HeldIntake(world.account)
    monkeypatch.setattr(world.account, "snapshots", intake)
    stored = await store_message(
        world.hub,
        channel=CHANNEL,
        account=ACCOUNT,
        body=order_body("T-7", status="created", city="Lyon"),
        headers={"webhook-id": "wh-7"},
    )

    gate_a = intake.hold_next()
    worker_a = asyncio.create_task(process_message(world.hub, stored.message_id))
    await intake.wait_for_calls(1)
    claimed_a = await world.message(stored.message_id)
    assert (claimed_a.fence, claimed_a.attempts) == (1, 1)
    world.clock.advance(world.hub.retry.lease_seconds - 1)
    assert await process_message(world.hub, stored.message_id) is Processed.LEASED
    world.clock.advance(2)

    plan_mapping(world, b_outcome)
    assert await process_message(world.hub, stored.message_id) is P_RESULT[b_outcome]
    as_b_wrote = await world.message(stored.message_id)
    assert as_b_wrote.state is P_STATE[b_outcome]
    assert (as_b_wrote.fence, as_b_wrote.attempts) == (2, 2)
    feed_b = await world.feed()

    world.clock.advance(7)
    plan_mapping(world, a_outcome)
    gate_a.set()
    assert await asyncio.wait_for(worker_a, WAIT_SECONDS) is Processed.STALE

    assert await world.message(stored.message_id) == as_b_wrote
    assert await world.feed() == feed_b  # A applied nothing: no order event of its own
    async with world.hub.uow() as uow:
        order = await uow.orders.get_by_channel_id(CHANNEL, ACCOUNT, "T-7")
    if b_outcome is Outcome.SUCCESS:
        assert order is not None
        assert order.version == 1
        assert order.shipping_address is not None
        assert order.shipping_address.city == "Lyon"
        assert [e.type for e in feed_b] == ["order.received"]
    else:
        assert order is None  # B did not apply it, and neither did A
        assert feed_b == []
    assert intake.calls == 2
