"""The command's claim in one statement and its outcome's write, on SQLite and PostgreSQL.

``claim`` takes a command only when it is pending, due, not leased, under the attempt cap
and every earlier command of its order has ended for good (succeeded or abandoned); any
other case is left as it was, for the step-by-step claim (which also weighs the kinds
a channel declares independent, and holds a command behind a failed one).
``record_outcome`` writes the outcome's columns only, under the claim's fence."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from orderhub.adapters.persistence import SqlUnitOfWorkFactory, create_engine
from orderhub.application.ports import ChannelCommand, CommandState
from orderhub.domain.model import Order

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
LEASE = timedelta(seconds=30)
CAP = 3
MakeOrder = Callable[..., Order]
MakeCommand = Callable[..., ChannelCommand]


async def _stored(factory: SqlUnitOfWorkFactory, order: Order, *commands: ChannelCommand) -> None:
    async with factory() as uow:
        uow.orders.add(order)
        for command in commands:
            uow.commands.add(command)
        await uow.commit()


async def _claim(
    factory: SqlUnitOfWorkFactory, command_id: str, now: datetime = T0
) -> ChannelCommand | None:
    async with factory() as uow:
        claimed = await uow.commands.claim(
            command_id, now=now, lease_until=now + LEASE, max_attempts=CAP
        )
        await uow.commit()
    return claimed


async def _read(factory: SqlUnitOfWorkFactory, command_id: str) -> ChannelCommand:
    async with factory() as uow:
        command = await uow.commands.get(command_id)
    assert command is not None
    return command


async def test_a_claim_takes_the_command_clears_its_hold_and_a_second_waits_for_the_lease(
    uow_factory: SqlUnitOfWorkFactory, make_order: MakeOrder, make_command: MakeCommand
) -> None:
    order = make_order()
    done = make_command(order, seq=1, state=CommandState.ABANDONED)
    command = make_command(order, seq=2, next_attempt_at=T0, held_by=done.id)
    await _stored(uow_factory, order, done, command)

    claimed = await _claim(uow_factory, command.id)
    assert claimed is not None
    assert (claimed.attempts, claimed.fence, claimed.lease_until) == (1, 1, T0 + LEASE)
    assert claimed.held_by is None
    assert claimed.payload == command.payload
    assert await _read(uow_factory, command.id) == claimed  # as stored

    assert await _claim(uow_factory, command.id, T0 + LEASE - timedelta(seconds=1)) is None
    again = await _claim(uow_factory, command.id, T0 + LEASE)  # the lease ran out
    assert again is not None
    assert (again.attempts, again.fence) == (2, 2)


@pytest.mark.parametrize(
    "why",
    [
        "not due",
        "at the cap",
        "succeeded",
        "failed",
        "abandoned",
        "an earlier pending one",
        "an earlier failed one",
    ],
)
async def test_a_claim_leaves_a_command_that_cannot_be_claimed_at_once_as_it_was(
    uow_factory: SqlUnitOfWorkFactory,
    make_order: MakeOrder,
    make_command: MakeCommand,
    why: str,
) -> None:
    order = make_order()
    earlier = make_command(order, seq=1, state=CommandState.SUCCEEDED)
    command = make_command(order, seq=2)
    if why == "not due":
        command.next_attempt_at = T0 + timedelta(seconds=1)
    elif why == "at the cap":
        command.attempts = CAP
    elif why in ("succeeded", "failed", "abandoned"):
        command.state = CommandState(why)
    elif why == "an earlier pending one":
        earlier.state = CommandState.PENDING
    else:
        earlier.state = CommandState.FAILED
    await _stored(uow_factory, order, earlier, command)
    before = await _read(uow_factory, command.id)

    assert await _claim(uow_factory, command.id) is None
    assert await _read(uow_factory, command.id) == before


async def test_commands_of_other_orders_stand_in_no_ones_way(
    uow_factory: SqlUnitOfWorkFactory, make_order: MakeOrder, make_command: MakeCommand
) -> None:
    first, second = make_order(), make_order(channel_order_id="CO-2")
    pending_elsewhere = make_command(first, seq=1)
    command = make_command(second, seq=2)
    await _stored(uow_factory, first, pending_elsewhere)
    await _stored(uow_factory, second, command)
    assert await _claim(uow_factory, command.id) is not None
    assert await _claim(uow_factory, "no-such-command") is None


@pytest.mark.postgres
async def test_concurrent_claims_of_one_command_give_it_to_one(
    postgres_url: str, make_order: MakeOrder, make_command: MakeCommand
) -> None:
    """Each claimant holds its claim uncommitted a moment: the others wait on the row, then
    find it leased."""
    engine = create_engine(postgres_url)
    factory = SqlUnitOfWorkFactory(engine)
    try:
        order = make_order()
        command = make_command(order)
        await _stored(factory, order, command)

        async def claim() -> int | None:
            async with factory() as uow:
                claimed = await uow.commands.claim(
                    command.id, now=T0, lease_until=T0 + LEASE, max_attempts=CAP
                )
                await asyncio.sleep(0.05)
                await uow.commit()
            return None if claimed is None else claimed.fence

        fences = await asyncio.gather(*(claim() for _ in range(5)))
        assert sorted(fences, key=lambda f: f or 0) == [None, None, None, None, 1]
        assert (await _read(factory, command.id)).attempts == 1
    finally:
        await engine.dispose()


async def test_an_outcome_writes_its_columns_only_and_only_under_its_claim(
    uow_factory: SqlUnitOfWorkFactory, make_order: MakeOrder, make_command: MakeCommand
) -> None:
    order = make_order()
    command = make_command(order)
    await _stored(uow_factory, order, command)
    claimed = await _claim(uow_factory, command.id)
    assert claimed is not None
    async with uow_factory() as uow:  # what others may write meanwhile, under this claim
        moved = await uow.commands.get(command.id)
        assert moved is not None
        moved.queued_at = T0 + timedelta(minutes=5)
        moved.payload = {"changed": True}
        assert await uow.commands.save(moved, fence=claimed.fence)
        await uow.commit()

    outcome = dataclasses.replace(
        claimed,
        state=CommandState.SUCCEEDED,
        result={"channel": "ok"},
        last_error=None,
        lease_until=None,
        finished_at=T0 + timedelta(seconds=1),
    )
    async with uow_factory() as uow:
        assert not await uow.commands.record_outcome(outcome, fence=claimed.fence - 1)
        assert await uow.commands.record_outcome(outcome, fence=claimed.fence)
        assert not await uow.commands.record_outcome(outcome, fence=claimed.fence)  # ended
        await uow.commit()
    stored = await _read(uow_factory, command.id)
    assert (stored.state, stored.result, stored.lease_until, stored.finished_at) == (
        CommandState.SUCCEEDED,
        {"channel": "ok"},
        None,
        T0 + timedelta(seconds=1),
    )
    assert stored.queued_at == T0 + timedelta(minutes=5)  # not the claim's copy
    assert stored.payload == {"changed": True}
