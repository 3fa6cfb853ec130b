"""The sweeper on SQL: what is due and was not handed to the queue for a while is queued
again, page by page, never more than once per grace period, never before its backoff
ends, and rows that are re-queued sweep after sweep never starve a newer one.

The rows are made directly (a crash between commit and enqueue, a lost broker message):
pending, due, not leased, ``queued_at`` long ago. Nothing dispatches them, so every one
stays due and "stuck" and the sweeper meets it again and again."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Final

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.integration.persistence.pipeline_support import (
    ACCOUNT,
    CHANNEL,
    World,
    make_world,
    order_body,
)

from orderhub.application.ports import ChannelCommand, InboxMessage
from orderhub.application.services.intake import store_message
from orderhub.application.services.operations import SweepResult, sweep
from orderhub.domain.model import Order

MakeOrder = Callable[..., Order]
MakeCommand = Callable[..., ChannelCommand]
MakeMessage = Callable[..., InboxMessage]

GRACE: Final = 120.0  # requeue_after_seconds
INTERVAL: Final = 30.0  # the scheduler's default sweep interval, shorter than the grace


async def add_commands(
    world: World,
    make_order: MakeOrder,
    make_command: MakeCommand,
    *,
    count: int,
    due: Callable[[int], datetime],
    queued: Callable[[int], datetime],
    prefix: str,
) -> list[str]:
    """``count`` pending commands, each the only one of its order (so none waits behind
    another), due at ``due(i)``, last handed to the queue at ``queued(i)``; their ids in
    ``i`` order."""
    ids: list[str] = []
    async with world.hub.uow() as uow:
        for i in range(count):
            order = make_order(f"{prefix}-{i}")
            uow.orders.add(order)
            command = make_command(
                order, created_at=queued(i), next_attempt_at=due(i), queued_at=queued(i), seq=1
            )
            uow.commands.add(command)
            ids.append(command.id)
        await uow.commit()
    return ids


async def add_messages(
    world: World,
    make_message: MakeMessage,
    *,
    count: int,
    due: Callable[[int], datetime],
    queued: Callable[[int], datetime],
    prefix: str,
) -> list[str]:
    ids: list[str] = []
    async with world.hub.uow() as uow:
        for i in range(count):
            message = make_message(f"{prefix}-{i}", received_at=queued(i))
            message.next_attempt_at = due(i)
            message.queued_at = queued(i)
            assert await uow.inbox.add(message)
            ids.append(message.id)
        await uow.commit()
    return ids


def queued_commands(world: World) -> list[str]:
    return [command_id for command_id, _ in world.queue.commands]


async def test_one_sweep_queues_every_due_row_page_by_page_once_per_grace(
    engine: AsyncEngine, make_order: MakeOrder, make_command: MakeCommand, make_message: MakeMessage
) -> None:
    world = make_world(engine)
    t0 = world.clock.now()
    long_ago = t0 - timedelta(hours=1)
    commands = await add_commands(
        world,
        make_order,
        make_command,
        count=250,
        due=lambda i: long_ago + timedelta(seconds=i),
        queued=lambda i: long_ago,
        prefix="due",
    )
    messages = await add_messages(
        world,
        make_message,
        count=250,
        due=lambda i: long_ago + timedelta(seconds=i),
        queued=lambda i: long_ago,
        prefix="due",
    )
    [later] = await add_commands(  # in backoff: due in five minutes
        world,
        make_order,
        make_command,
        count=1,
        due=lambda i: t0 + timedelta(minutes=5),
        queued=lambda i: long_ago,
        prefix="backoff",
    )

    result = await sweep(world.hub, requeue_after_seconds=GRACE, limit=250, page=100)

    assert result == SweepResult(commands=250, messages=250)  # three pages each
    assert queued_commands(world) == commands  # oldest due first, each once
    assert world.queue.messages == messages
    async with world.hub.uow() as uow:
        marked = [await uow.commands.get(c) for c in commands]
        in_backoff = await uow.commands.get(later)
    assert {c.queued_at for c in marked if c is not None} == {t0}
    assert in_backoff is not None
    assert in_backoff.queued_at == long_ago

    # within the grace the rows just queued are left alone, at its end they come again
    for step in (0.0, GRACE - 1, 1):
        world.clock.advance(step)
        assert await sweep(world.hub, requeue_after_seconds=GRACE, limit=500) == SweepResult(
            commands=0, messages=0
        )
    world.clock.advance(1)
    again = await sweep(world.hub, requeue_after_seconds=GRACE, limit=500, page=100)
    assert again == SweepResult(commands=250, messages=250)  # stops at a short page
    assert Counter(queued_commands(world)) == Counter(commands * 2)
    assert later not in queued_commands(world)  # 2 min 2 s: its backoff still runs

    world.clock.current = t0 + timedelta(minutes=5) - timedelta(microseconds=1)
    assert await sweep(world.hub, requeue_after_seconds=GRACE) == SweepResult(
        commands=250,
        messages=250,  # the others, a grace after their last queueing
    )
    assert later not in queued_commands(world)  # a microsecond early: still not taken
    world.clock.current = t0 + timedelta(minutes=5)
    assert await sweep(world.hub, requeue_after_seconds=GRACE) == SweepResult(
        commands=1, messages=0
    )
    assert queued_commands(world)[-1] == later


async def test_a_sweep_queues_no_more_than_its_limit(
    engine: AsyncEngine, make_order: MakeOrder, make_command: MakeCommand, make_message: MakeMessage
) -> None:
    """``limit`` bounds one sweep (commands and messages each), also when it is not a
    multiple of the page: 250 due, limit 150, pages of 100 -> 150 queued, not 200."""
    world = make_world(engine)
    long_ago = world.clock.now() - timedelta(hours=1)
    await add_commands(
        world,
        make_order,
        make_command,
        count=250,
        due=lambda i: long_ago,
        queued=lambda i: long_ago,
        prefix="due",
    )
    await add_messages(
        world,
        make_message,
        count=250,
        due=lambda i: long_ago,
        queued=lambda i: long_ago,
        prefix="m",
    )

    result = await sweep(world.hub, requeue_after_seconds=GRACE, limit=150, page=100)

    assert (len(world.queue.commands), len(world.queue.messages)) == (
        result.commands,
        result.messages,
    )
    assert result == SweepResult(commands=150, messages=150)


async def sweeps_until_queued(
    world: World,
    wanted: str,
    queued: Callable[[], Sequence[str]],
    *,
    limit: int,
    page: int,
    sweeps: int,
    not_before: dict[str, datetime],
) -> int | None:
    """Sweep every ``INTERVAL`` seconds; the number of the sweep that queued ``wanted``
    (None if none of ``sweeps`` did). Checks on the way that no row is queued before its
    ``not_before`` time (its backoff)."""
    for n in range(1, sweeps + 1):
        before = len(queued())
        await sweep(world.hub, requeue_after_seconds=GRACE, limit=limit, page=page)
        taken = queued()[before:]
        for row_id in taken:
            due = not_before.get(row_id)
            assert due is None or due <= world.clock.now(), f"{row_id} taken in its backoff"
        if wanted in taken:
            return n
        world.clock.advance(INTERVAL)
    return None


STARVATION: Final = [
    # (limit, page): what one sweep may take; 500 rows stay stuck all along
    pytest.param(500, 100, id="limit-500"),  # the scheduler's default: 4 sweeps per grace
    # fewer than the stuck rows per grace period: only a fair order gets the newer one in
    pytest.param(100, 50, id="limit-100"),
]


@pytest.mark.parametrize(("limit", "page"), STARVATION)
async def test_stuck_commands_never_starve_a_newer_one_whose_enqueue_was_lost(
    engine: AsyncEngine, make_order: MakeOrder, make_command: MakeCommand, limit: int, page: int
) -> None:
    """500 commands are re-queued every grace period and never end (their job keeps being
    lost); a newer one, whose enqueue was lost too, must still be queued within a bounded
    number of sweeps (one every ``INTERVAL``), and two in backoff never before they are
    due. With ``limit`` 100 the sweeps of one grace period take 400 rows: a sweeper that
    takes the oldest *due* first gives them all to the stuck ones, for ever."""
    world = make_world(engine)
    t0 = world.clock.now()
    stuck = await add_commands(
        world,
        make_order,
        make_command,
        count=500,
        due=lambda i: t0 - timedelta(days=1) + timedelta(seconds=i),
        queued=lambda i: t0 - timedelta(days=1),
        prefix="stuck",
    )
    backoff_due = t0 + timedelta(minutes=7)
    [in_backoff] = await add_commands(
        world,
        make_order,
        make_command,
        count=1,
        due=lambda i: backoff_due,
        queued=lambda i: backoff_due,  # as a retry leaves it: queued (delayed) until then
        prefix="backoff",
    )
    [retried] = await add_commands(  # due later, queued long ago: only its due time holds it
        world,
        make_order,
        make_command,
        count=1,
        due=lambda i: backoff_due,
        queued=lambda i: t0 - timedelta(days=1),
        prefix="retried",
    )
    [newer] = await add_commands(  # created ten minutes ago; the enqueue after commit was lost
        world,
        make_order,
        make_command,
        count=1,
        due=lambda i: t0 - timedelta(minutes=10),
        queued=lambda i: t0 - timedelta(minutes=10),
        prefix="newer",
    )

    bound = -(-len(stuck) // limit) + int(GRACE // INTERVAL) + 1
    found = await sweeps_until_queued(
        world,
        newer,
        lambda: queued_commands(world),
        limit=limit,
        page=page,
        sweeps=bound * 3,
        not_before={in_backoff: backoff_due, retried: backoff_due},
    )

    assert found is not None, "the newer command was never queued"
    assert found <= bound
    assert set(stuck) <= set(queued_commands(world))  # the stuck ones were re-queued too


@pytest.mark.parametrize(("limit", "page"), STARVATION)
async def test_stuck_messages_never_starve_a_newer_one_whose_enqueue_was_lost(
    engine: AsyncEngine, make_message: MakeMessage, limit: int, page: int
) -> None:
    """The same for inbox messages."""
    world = make_world(engine)
    t0 = world.clock.now()
    stuck = await add_messages(
        world,
        make_message,
        count=500,
        due=lambda i: t0 - timedelta(days=1) + timedelta(seconds=i),
        queued=lambda i: t0 - timedelta(days=1),
        prefix="stuck",
    )
    backoff_due = t0 + timedelta(minutes=7)
    [in_backoff] = await add_messages(
        world,
        make_message,
        count=1,
        due=lambda i: backoff_due,
        queued=lambda i: backoff_due,
        prefix="backoff",
    )
    [retried] = await add_messages(
        world,
        make_message,
        count=1,
        due=lambda i: backoff_due,
        queued=lambda i: t0 - timedelta(days=1),
        prefix="retried",
    )
    [newer] = await add_messages(
        world,
        make_message,
        count=1,
        due=lambda i: t0 - timedelta(minutes=10),
        queued=lambda i: t0 - timedelta(minutes=10),
        prefix="newer",
    )

    bound = -(-len(stuck) // limit) + int(GRACE // INTERVAL) + 1
    found = await sweeps_until_queued(
        world,
        newer,
        lambda: world.queue.messages,
        limit=limit,
        page=page,
        sweeps=bound * 3,
        not_before={in_backoff: backoff_due, retried: backoff_due},
    )

    assert found is not None, "the newer message was never queued"
    assert found <= bound
    assert set(stuck) <= set(world.queue.messages)


async def test_a_webhook_stored_by_intake_whose_enqueue_was_lost_is_queued_by_the_sweep(
    engine: AsyncEngine,
) -> None:
    """The crash window between the webhook's commit (one autocommit statement on
    PostgreSQL, a unit of work on SQLite) and its hand-off to the queue: the process dies
    in between, so the queue never hears of it. The sweep queues it once its grace is
    over, not before, and once."""
    world = make_world(engine)
    stored = await store_message(
        world.hub,
        channel=CHANNEL,
        account=ACCOUNT,
        body=order_body("T-lost"),
        headers={"webhook-id": "wh-lost"},
    )
    world.queue.messages.clear()  # the enqueue that died with the process

    await sweep(world.hub, requeue_after_seconds=GRACE, limit=500, page=100)
    assert world.queue.messages == []  # within its grace: its own enqueue may still come
    world.clock.advance(GRACE + 1)
    await sweep(world.hub, requeue_after_seconds=GRACE, limit=500, page=100)
    assert world.queue.messages == [stored.message_id]
    await sweep(world.hub, requeue_after_seconds=GRACE, limit=500, page=100)
    assert world.queue.messages == [stored.message_id]  # not again within the next grace
