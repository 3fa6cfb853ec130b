"""The use cases of the core, run on the SQL unit of work instead of the fakes.

These check that the adapter keeps the promises the service layer relies on: dedupe on
intake, the order change and its command in one commit, idempotency keys, the lease of
dispatch, ``command.*`` events on the feed."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from orderhub.adapters.persistence import SqlUnitOfWorkFactory, create_engine
from orderhub.application.hub import Hub
from orderhub.application.ports import CommandState
from orderhub.application.services.common import Idempotency, IdempotencyKeyReused
from orderhub.application.services.dispatch import Dispatched, dispatch_command
from orderhub.application.services.intake import Processed, process_message, store_message
from orderhub.application.services.operations import SweepResult, sweep
from orderhub.application.services.queries import get_order, read_feed
from orderhub.application.services.seller_commands import accept_order
from orderhub.channels.registry import ChannelRegistry, LoadedPlugin
from orderhub.channels.spi import AccountConfig
from orderhub.domain.values import OrderStatus
from orderhub.testing.channel import plugin
from orderhub.testing.fakes import FixedClock, RecordingQueue, SequentialIds

DOC = {
    "id": "T-1001",
    "status": "created",
    "lines": [
        {"id": "L1", "title": "Phone", "quantity": 2, "sku": "SKU-1", "price": 19900},
        {"id": "L2", "title": "Case", "quantity": 1, "sku": "SKU-2", "price": 1900},
    ],
    "currency": "EUR",
    "placed_at": "2026-01-01T11:00:00Z",
}


@dataclass
class World:
    hub: Hub
    clock: FixedClock
    queue: RecordingQueue


def make_world(engine: AsyncEngine) -> World:
    registry = ChannelRegistry(
        {"testchannel": LoadedPlugin(plugin=plugin, distribution="orderhub", version="test")},
        [AccountConfig(channel="testchannel", name="main", settings={"profile": "topi"})],
    )
    clock = FixedClock()
    queue = RecordingQueue()
    hub = Hub(
        uow=SqlUnitOfWorkFactory(engine, clock=clock),
        channels=registry,
        clock=clock,
        ids=SequentialIds(),
        queue=queue,
    )
    return World(hub=hub, clock=clock, queue=queue)


async def receive(world: World, *, channel_order_id: str = "T-1001") -> str:
    stored = await store_message(
        world.hub,
        channel="testchannel",
        account="main",
        body=json.dumps({**DOC, "id": channel_order_id}).encode(),
        headers={"webhook-id": f"wh-{channel_order_id}"},
    )
    state = await process_message(world.hub, stored.message_id)
    async with world.hub.uow() as uow:
        message = await uow.inbox.get(stored.message_id)
        order = await uow.orders.get_by_channel_id("testchannel", "main", channel_order_id)
    assert message is not None
    assert state is Processed.PROCESSED, message.last_error
    assert order is not None
    return order.id


async def test_intake_accept_dispatch_and_the_feed(engine: AsyncEngine) -> None:
    world = make_world(engine)
    order_id = await receive(world)
    duplicate = await store_message(
        world.hub,
        channel="testchannel",
        account="main",
        body=b"whatever the body",
        headers={"webhook-id": "wh-T-1001"},
    )
    assert duplicate.duplicate

    key = Idempotency(key="idem-1", fingerprint="accept-all")
    receipt = await accept_order(world.hub, order_id=order_id, idempotency=key)
    again = await accept_order(world.hub, order_id=order_id, idempotency=key)
    assert again == receipt  # the stored first answer, no second command
    with pytest.raises(IdempotencyKeyReused):
        await accept_order(
            world.hub, order_id=order_id, idempotency=Idempotency(key="idem-1", fingerprint="x")
        )
    view = await get_order(world.hub, order_id)
    assert view.order.status is OrderStatus.READY_TO_SHIP
    assert [(c.id, c.state) for c in view.commands] == [(receipt.command_id, CommandState.PENDING)]

    world.clock.advance(60)
    assert await dispatch_command(world.hub, receipt.command_id) is Dispatched.SUCCEEDED
    assert await dispatch_command(world.hub, receipt.command_id) is Dispatched.ENDED
    world.clock.advance(3600)
    assert await sweep(world.hub) == SweepResult(commands=0, messages=0)

    feed = await read_feed(world.hub, after=0, limit=100)
    assert [e.seq for e in feed] == list(range(1, len(feed) + 1))
    assert [e.type for e in feed] == [
        "order.received",
        "order.accepted",
        "order.ready_to_ship",
        "command.succeeded",
    ]
    assert feed[-1].data["command_id"] == receipt.command_id
    assert feed[-1].order_id == order_id


async def test_a_dispatch_lease_keeps_a_second_worker_off(engine: AsyncEngine) -> None:
    world = make_world(engine)
    order_id = await receive(world)
    receipt = await accept_order(world.hub, order_id=order_id)
    async with world.hub.uow() as uow:  # a worker claimed it and died mid-call
        command = await uow.commands.get(receipt.command_id, for_update=True)
        assert command is not None
        command.attempts = 1
        command.fence = 1
        command.lease_until = world.clock.now() + timedelta(seconds=120)
        await uow.commands.save(command)
        await uow.commit()
    assert await dispatch_command(world.hub, receipt.command_id) is Dispatched.LEASED
    world.clock.advance(60)
    assert (await sweep(world.hub, requeue_after_seconds=30)).commands == 0  # still leased
    world.clock.advance(61)
    assert (await sweep(world.hub, requeue_after_seconds=30)).commands == 1  # lease ran out
    assert await dispatch_command(world.hub, receipt.command_id) is Dispatched.SUCCEEDED
    async with world.hub.uow() as uow:
        done = await uow.commands.get(receipt.command_id)
    assert done is not None
    assert (done.attempts, done.fence) == (2, 2)  # the lost attempt counts against the cap


@pytest.mark.postgres
async def test_concurrent_requests_with_one_idempotency_key_make_one_command(
    postgres_url: str,
) -> None:
    """The same request sent eight times at once (a client retrying on a timeout) gets the
    first answer each time, whichever request wins: never an error about the order the
    winner already changed."""
    engine = create_engine(postgres_url)
    try:
        world = make_world(engine)
        for attempt in range(20):  # the race is timing-dependent: run it a few times
            order_id = await receive(world, channel_order_id=f"T-{attempt}")
            key = Idempotency(key=f"key-{attempt}", fingerprint="accept-all")
            receipts = await asyncio.gather(
                *(accept_order(world.hub, order_id=order_id, idempotency=key) for _ in range(8))
            )
            assert len({r.command_id for r in receipts}) == 1
            view = await get_order(world.hub, order_id)
            assert len(view.commands) == 1
    finally:
        await engine.dispose()
