"""Retention on SQL: each kind of row goes after its own age, and nothing an operator or a
worker still needs.

Everything is made through the services at known times (the hub's FixedClock is set back
and moved forward), then one ``retention.prune`` runs at the end."""

from __future__ import annotations

from collections.abc import Callable
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

from orderhub.adapters.persistence import SqlUnitOfWorkFactory
from orderhub.application.ports import (
    ChannelCommand,
    CommandState,
    InboxState,
    Pruned,
    StoredResponse,
)
from orderhub.application.services.intake import Processed, process_message, store_message
from orderhub.application.services.queries import FeedCursorExpired, read_feed
from orderhub.application.services.retention import RetentionPolicy, prune
from orderhub.testing.fakes import FixedClock

MakeCommand = Callable[..., ChannelCommand]

POLICY: Final = RetentionPolicy(
    inbox_body_days=30, inbox_days=90, command_days=60, idempotency_days=7, feed_days=45
)


def days_ago(world: World, end: datetime, days: float) -> None:
    world.clock.current = end - timedelta(days=days)


async def store(world: World, name: str, body: bytes | None = None) -> str:
    stored = await store_message(
        world.hub,
        channel=CHANNEL,
        account=ACCOUNT,
        body=order_body(f"T-{name}") if body is None else body,
        headers={"webhook-id": f"wh-{name}"},
    )
    assert not stored.duplicate
    return stored.message_id


async def late_duplicate(world: World, name: str) -> tuple[bool, str]:
    again = await store_message(
        world.hub,
        channel=CHANNEL,
        account=ACCOUNT,
        body=order_body(f"T-{name}"),
        headers={"webhook-id": f"wh-{name}"},
    )
    return again.duplicate, again.message_id


async def test_prune_keeps_each_kind_for_its_own_age_and_never_what_is_open(
    engine: AsyncEngine, make_command: MakeCommand
) -> None:
    world = make_world(engine)
    end = world.clock.now() + timedelta(days=400)

    # -- made oldest first, so the feed's times rise with its numbers ----------------
    days_ago(world, end, 300)
    order_id = await world.receive("T-cmd")
    succeeded, abandoned = CommandState.SUCCEEDED, CommandState.ABANDONED
    failed_state, pending = CommandState.FAILED, CommandState.PENDING
    specs: list[tuple[str, CommandState, float | None]] = [  # name, state, finished days ago
        ("succeeded_old", succeeded, 61),
        ("abandoned_old", abandoned, 61),
        ("succeeded_recent", succeeded, 59),
        ("failed_old", failed_state, 300),
        ("pending_old", pending, None),
        ("pending_finished", pending, 300),  # retried, a finish time left over: still open
    ]
    async with world.hub.uow() as uow:
        order = await uow.orders.get(order_id)
        assert order is not None
        commands: dict[str, ChannelCommand] = {}
        for seq, (name, state, finished) in enumerate(specs, start=1):
            commands[name] = make_command(
                order,
                created_at=world.clock.now(),
                seq=seq,
                state=state,
                finished_at=None if finished is None else end - timedelta(days=finished),
            )
            uow.commands.add(commands[name])
        await uow.commit()

    days_ago(world, end, 200)
    failed = await store(world, "failed", body=b"not a test channel document")
    assert await process_message(world.hub, failed) is Processed.FAILED
    received = await store(world, "received")  # never processed: a worker's to do

    days_ago(world, end, 100)
    old = await store(world, "old")
    assert await process_message(world.hub, old) is Processed.PROCESSED
    days_ago(world, end, 89)
    late = await store(world, "late")  # received within the dedupe window...
    days_ago(world, end, 40)
    body = await store(world, "body")
    assert await process_message(world.hub, body) is Processed.PROCESSED
    days_ago(world, end, 31)
    assert await process_message(world.hub, late) is Processed.PROCESSED  # ...processed late
    days_ago(world, end, 20)
    fresh = await store(world, "fresh")
    assert await process_message(world.hub, fresh) is Processed.PROCESSED

    for days, key in ((8, "key-old"), (6, "key-new")):
        days_ago(world, end, days)
        async with world.hub.uow() as uow:
            await uow.idempotency.put(
                StoredResponse(key=key, fingerprint="f", status_code=202, body={"k": key})
            )
            await uow.commit()

    feed_before = await world.feed()
    world.clock.current = end

    pruned = await prune(world.hub, POLICY)

    feed_cutoff = end - timedelta(days=POLICY.feed_days)
    old_events = [e for e in feed_before if e.occurred_at < feed_cutoff]
    assert [e.seq for e in old_events] == [1, 2]  # the first order and "old"'s
    # rows: "old" and the first order's webhook (300 days); bodies: "late", "body", and
    # those two's too (emptied, then their rows deleted, in the same pass)
    assert pruned == Pruned(
        inbox_bodies=4, inbox_messages=2, commands=2, idempotency_keys=1, feed_events=2
    )

    async with world.hub.uow() as uow:
        messages = {name: await uow.inbox.get(mid) for name, mid in [
            ("failed", failed), ("received", received), ("old", old), ("late", late),
            ("body", body), ("fresh", fresh),
        ]}  # fmt: skip
        kept_commands = {name: await uow.commands.get(c.id) for name, c in commands.items()}
        keys = {key: await uow.idempotency.get(key) for key in ("key-old", "key-new")}
    assert messages["old"] is None  # processed and received 100 days ago: gone
    shown = {name: (m.state, m.body != b"") for name, m in messages.items() if m is not None}
    assert shown == {
        "failed": (InboxState.FAILED, True),  # an operator's to look at, body and all
        "received": (InboxState.RECEIVED, True),
        "late": (InboxState.PROCESSED, False),  # processed 31 days ago: body emptied
        "body": (InboxState.PROCESSED, False),
        "fresh": (InboxState.PROCESSED, True),  # processed 20 days ago
    }
    assert {name for name, c in kept_commands.items() if c is not None} == {
        "succeeded_recent",
        "failed_old",
        "pending_old",
        "pending_finished",
    }
    assert keys["key-old"] is None
    assert keys["key-new"] is not None

    # a late duplicate of a message whose body went is still recognised by its key...
    assert await late_duplicate(world, "body") == (True, body)
    assert await late_duplicate(world, "late") == (True, late)
    # ...one past the dedupe window (its row deleted) is not: it is new again
    duplicate, _ = await late_duplicate(world, "old")
    assert not duplicate

    # the feed lost its first two events: a cursor before the oldest kept has expired
    feed = await world.feed()
    assert [e.seq for e in feed] == [e.seq for e in feed_before if e.seq > 2]
    assert feed[0].seq == 3
    for after in (0, 1):
        with pytest.raises(FeedCursorExpired):
            await read_feed(world.hub, after=after, limit=10)
    assert [e.seq for e in await read_feed(world.hub, after=2, limit=100)] == [e.seq for e in feed]


async def test_prune_never_takes_the_newest_event_and_numbering_goes_on(
    engine: AsyncEngine,
) -> None:
    world = make_world(engine)
    for n in range(3):
        await world.receive(f"T-{n}")
    newest = (await world.feed())[-1].seq
    assert newest == 3
    world.clock.advance(POLICY.feed_days * 86_400 * 10)  # everything is far too old

    pruned = await prune(world.hub, POLICY)

    assert pruned.feed_events == 2
    assert [e.seq for e in await world.feed()] == [newest]
    with pytest.raises(FeedCursorExpired):
        await read_feed(world.hub, after=newest - 2, limit=10)
    assert [e.seq for e in await read_feed(world.hub, after=newest - 1, limit=10)] == [newest]
    assert await read_feed(world.hub, after=newest, limit=10) == []  # a reader up to date
    assert (await prune(world.hub, POLICY)).feed_events == 0  # the newest stays, again
    await world.receive("T-next")
    assert [e.seq for e in await read_feed(world.hub, after=newest, limit=10)] == [newest + 1]


async def test_pruning_the_feed_leaves_no_hole_a_reader_would_skip(engine: AsyncEngine) -> None:
    """Two writers: A records its event first (its transaction is slower), B records a
    second later and commits first. B's event gets seq 1, A's seq 2, with an earlier time.
    A prune whose cutoff falls between the two times must not delete 2 while keeping 1:
    a reader at cursor 1 would then be given 3 and never learn that 2 existed."""
    world = make_world(engine)
    cutoff = world.clock.now()  # what end - feed_days will be
    end = cutoff + timedelta(days=POLICY.feed_days)
    slow = SqlUnitOfWorkFactory(engine, clock=FixedClock(cutoff - timedelta(seconds=1)))
    fast = SqlUnitOfWorkFactory(engine, clock=FixedClock(cutoff + timedelta(seconds=1)))
    async with slow() as a:
        a.record("command.succeeded", order=None, data={"writer": "A"})
        async with fast() as b:
            b.record("command.succeeded", order=None, data={"writer": "B"})
            await b.commit()
        await a.commit()
    world.clock.current = end - timedelta(days=1)
    await world.receive("T-later")
    feed_before = await world.feed()
    assert [(e.seq, e.data.get("writer")) for e in feed_before[:2]] == [(1, "B"), (2, "A")]
    world.clock.current = end

    await prune(world.hub, POLICY)

    try:  # a reader that had read up to 1: given 2, or told that it fell behind
        entries: list[int] | None = [e.seq for e in await read_feed(world.hub, after=1, limit=10)]
    except FeedCursorExpired:
        entries = None
    assert entries is None or entries[:1] == [2], f"after 1, the reader is given {entries}"
    seqs = [e.seq for e in await world.feed()]
    assert seqs == list(range(seqs[0], seqs[-1] + 1)), f"a hole in the feed: {seqs}"


async def test_a_message_after_the_inbox_was_pruned_is_not_taken_for_an_older_one(
    engine: AsyncEngine,
) -> None:
    """Messages are ordered by their arrival number (``seq``), and the order remembers the
    newest it applied. Pruning every processed row must not let the numbering start again
    below it (SQLite numbers max + 1): the next webhook would be taken for an older one
    and its news dropped."""
    world = make_world(engine)
    order_id = await world.receive("T-1")
    for n, status in enumerate(["confirmed", "packed"], start=1):
        stored = await store_message(
            world.hub,
            channel=CHANNEL,
            account=ACCOUNT,
            body=order_body("T-1", status=status),
            headers={"webhook-id": f"wh-1-{n}"},
        )
        assert await process_message(world.hub, stored.message_id) is Processed.PROCESSED
    world.clock.advance(POLICY.inbox_days * 86_400 + 1)
    await prune(world.hub, POLICY)

    news = await store_message(
        world.hub,
        channel=CHANNEL,
        account=ACCOUNT,
        body=order_body("T-1", status="shipped", city="Lyon"),
        headers={"webhook-id": "wh-1-after-prune"},
    )
    assert await process_message(world.hub, news.message_id) is Processed.PROCESSED

    async with world.hub.uow() as uow:
        order = await uow.orders.get(order_id)
    assert order is not None
    assert order.channel_status == "shipped"
    assert order.shipping_address is not None
    assert order.shipping_address.city == "Lyon"
