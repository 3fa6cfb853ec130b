"""One order's commands and messages go one at a time, in order, under concurrent workers.

Two asyncio tasks act as two workers: each repeatedly takes any id the queue was ever given
(at random, so most attempts hit a command or message that must wait) and runs the job.
On PostgreSQL the claims take real row locks on separate connections. Whatever the
interleaving, the channel must see the commands in their order (``seq``), each once (a
transient failure repeats only the failed one, before any later one), and the order must
end as its last message says, each message applied after the one before it."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from enum import StrEnum
from typing import Final

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.integration.persistence.pipeline_support import (
    ACCOUNT,
    CHANNEL,
    WAIT_SECONDS,
    World,
    make_world,
    order_body,
)

from orderhub.application.hub import RetryPolicy
from orderhub.application.ports import CommandState, InboxState
from orderhub.application.services.dispatch import Dispatched, dispatch_command
from orderhub.application.services.intake import Processed, process_message, store_message
from orderhub.application.services.queries import get_order
from orderhub.application.services.seller_commands import accept_order, record_shipment
from orderhub.channels.spi import TransientChannelError
from orderhub.domain.values import LineQuantity

# leases far longer than any test runs: a lease that ran out would (rightly) repeat a call
RETRY: Final = RetryPolicy(base_seconds=2, max_seconds=4, lease_seconds=10**7)
WORKERS: Final = 2
STEPS: Final = 400  # per worker: a bound, far above what a run needs


async def run_workers(
    world: World,
    *,
    queued: Callable[[], Sequence[str]],
    job: Callable[[str], Awaitable[StrEnum]],
    finished: Callable[[], Awaitable[bool]],
    not_due: StrEnum,
) -> list[StrEnum]:
    """``WORKERS`` concurrent tasks run ``job`` on ids picked at random from ``queued()``
    until ``finished()``. A job that is not due yet moves the shared clock a second (the
    delayed queue message would arrive then). Returns every job's result."""
    results: list[StrEnum] = []
    done = asyncio.Event()

    async def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(STEPS):
            if done.is_set():
                return
            result = await job(rng.choice(sorted(set(queued()))))
            results.append(result)
            if result == not_due:
                world.clock.advance(1)
            if await finished():
                done.set()
            await asyncio.sleep(0)  # let the other worker in between jobs, too
        raise AssertionError(f"not finished after {STEPS} jobs: {results[-20:]}")

    async with asyncio.timeout(WAIT_SECONDS * 4):
        await asyncio.gather(*(worker(seed) for seed in range(WORKERS)))
    return results


@pytest.mark.parametrize("accept_fails_first", [False, True], ids=["smooth", "transient"])
async def test_two_workers_send_one_orders_commands_in_order_each_once(
    engine: AsyncEngine, accept_fails_first: bool
) -> None:
    world = make_world(engine, retry=RETRY)
    order_id = await world.receive()
    lines = {
        line.channel_line_id: line.id for line in (await get_order(world.hub, order_id)).order.lines
    }
    accept = await accept_order(world.hub, order_id=order_id)
    ships = [
        await record_shipment(
            world.hub,
            order_id=order_id,
            items=[LineQuantity(line_id=lines[channel_line], quantity=1)],
            carrier="DHL",
            tracking_number=f"TN-{n}",
        )
        for n, channel_line in enumerate(["L1", "L1", "L2"])
    ]
    in_order = [accept.command_id, *(s.command_id for s in ships)]
    assert [c.id for c in await world.commands_of(order_id)] == in_order  # seq 1..4
    assert [c.seq for c in await world.commands_of(order_id)] == [1, 2, 3, 4]
    if accept_fails_first:
        world.account.fail_next(TransientChannelError("the channel is busy", status=503))

    async def finished() -> bool:
        return all(c.state.is_final for c in await world.commands_of(order_id))

    results = await run_workers(
        world,
        queued=lambda: [command_id for command_id, _ in world.queue.commands],
        job=lambda command_id: dispatch_command(world.hub, command_id),
        finished=finished,
        not_due=Dispatched.NOT_DUE,
    )

    calls = [call.command_id for call in world.account.calls]
    expected = [accept.command_id, *in_order] if accept_fails_first else in_order
    assert calls == expected, results
    commands = await world.commands_of(order_id)
    assert [c.state for c in commands] == [CommandState.SUCCEEDED] * 4
    assert [c.attempts for c in commands] == [2 if accept_fails_first else 1, 1, 1, 1]
    assert results.count(Dispatched.SUCCEEDED) == 4
    assert results.count(Dispatched.RETRY) == (1 if accept_fails_first else 0)
    assert Dispatched.STALE not in results
    assert Dispatched.FAILED not in results
    succeeded = [e.data["command_id"] for e in await world.feed() if e.type == "command.succeeded"]
    assert succeeded == in_order


CITIES: Final = ["Berlin", "Hamburg", "Munich", "Cologne", "Frankfurt", "Stuttgart"]


@pytest.mark.parametrize("first_fails_first", [False, True], ids=["smooth", "transient"])
async def test_two_workers_apply_one_orders_messages_in_arrival_order(
    engine: AsyncEngine, first_fails_first: bool
) -> None:
    world = make_world(engine, retry=RETRY)
    statuses = [f"status-{n}" for n in range(len(CITIES))]
    message_ids = []
    for n, (status, city) in enumerate(zip(statuses, CITIES, strict=True)):
        stored = await store_message(
            world.hub,
            channel=CHANNEL,
            account=ACCOUNT,
            body=order_body("T-9", status=status, city=city),
            headers={"webhook-id": f"wh-9-{n}"},
        )
        assert not stored.duplicate
        message_ids.append(stored.message_id)
    seqs = [(await world.message(m)).seq or 0 for m in message_ids]
    assert seqs == sorted(seqs)  # stored in this order: numbered in this order
    assert len(set(seqs)) == len(seqs)

    # a later message waits while an earlier one of its order is unprocessed
    assert await process_message(world.hub, message_ids[-1]) is Processed.WAITING
    assert await process_message(world.hub, message_ids[1]) is Processed.WAITING
    waiting = await world.message(message_ids[1])
    assert (waiting.state, waiting.attempts, waiting.fence) == (InboxState.RECEIVED, 0, 0)
    if first_fails_first:
        world.account.fail_next_intake(TransientChannelError("the channel is busy"))

    async def finished() -> bool:
        states = [(await world.message(m)).state for m in message_ids]
        return states == [InboxState.PROCESSED] * len(message_ids)

    results = await run_workers(
        world,
        queued=lambda: world.queue.messages,
        job=lambda message_id: process_message(world.hub, message_id),
        finished=finished,
        not_due=Processed.NOT_DUE,
    )

    assert results.count(Processed.PROCESSED) == len(message_ids)
    assert results.count(Processed.RETRY) == (1 if first_fails_first else 0)
    assert Processed.STALE not in results
    async with world.hub.uow() as uow:
        order = await uow.orders.get_by_channel_id(CHANNEL, ACCOUNT, "T-9")
    assert order is not None
    assert order.channel_status == statuses[-1]
    assert order.shipping_address is not None
    assert order.shipping_address.city == CITIES[-1]
    # each message was applied after the one before it: each one's news is on the feed,
    # in arrival order (one applied after a later one would be "older" and show nothing)
    feed = [e for e in await world.feed() if e.order_id == order.id]
    assert [e.type for e in feed] == ["order.received"] + ["order.updated"] * (len(CITIES) - 1)
    assert [e.data.get("channel_status") for e in feed[1:]] == statuses[1:]
    attempts = [(await world.message(m)).attempts for m in message_ids]
    assert attempts == [2 if first_fails_first else 1] + [1] * (len(CITIES) - 1)
