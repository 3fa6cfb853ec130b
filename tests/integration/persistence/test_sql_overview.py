"""The operator's reads (OverviewReader) in SQL, against the fake's answers: counts,
backlogs, the hourly chart, ship-by, search (customer and SKU inside the JSON document),
an order's messages and events."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from orderhub.adapters.persistence import SqlUnitOfWork
from orderhub.application.ports import CommandState, InboxMessage, InboxState
from orderhub.domain.model import Order
from orderhub.domain.values import OrderStatus

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)  # the conftest's


async def test_overview_reads(
    engine: AsyncEngine,
    make_order: Callable[..., Order],
    make_command: Callable[..., Any],
    make_message: Callable[..., InboxMessage],
) -> None:
    first = make_order("CO-1", now=NOW - timedelta(hours=3), ship_by=NOW + timedelta(hours=2))
    second = make_order("CO-Müller", now=NOW - timedelta(minutes=10))
    third = make_order("CO-3", channel="other", now=NOW - timedelta(hours=60))
    uow = SqlUnitOfWork(engine)
    async with uow:
        for order in (first, second, third):
            uow.orders.add(order)
        pending = make_command(first, created_at=NOW - timedelta(minutes=5))
        failed = make_command(second, state=CommandState.FAILED)
        uow.commands.add(pending)
        uow.commands.add(failed)
        waiting = make_message("m-1", received_at=NOW - timedelta(minutes=7))
        waiting.order_key = "CO-1"
        done = make_message("m-2")
        done.order_key = "CO-1"
        done.state, done.processed_at = InboxState.PROCESSED, NOW
        await uow.inbox.add(waiting)
        await uow.inbox.add(done)
        await uow.commit()

    async with SqlUnitOfWork(engine) as uow:
        reads = uow.overview
        counts = {(c.channel, c.status): c.count for c in await reads.status_counts()}
        assert counts == {
            ("testchannel", OrderStatus.AWAITING_ACCEPTANCE): 2,
            ("other", OrderStatus.AWAITING_ACCEPTANCE): 1,
        }
        inbox = await reads.inbox_backlog()
        assert (inbox.count, inbox.oldest) == (1, NOW - timedelta(minutes=7))
        commands = await reads.command_backlog()
        assert (commands.count, commands.oldest) == (1, NOW - timedelta(minutes=5))
        assert await reads.feed_head() >= 3
        (activity,) = await reads.channel_activity()
        assert (activity.account, activity.source, activity.last_processed_at) == (
            "main",
            "webhook",
            NOW,
        )
        hours = await reads.received_per_hour(since=NOW - timedelta(hours=47))
        assert sorted((h.channel, h.hour, h.count) for h in hours) == [
            ("testchannel", (NOW - timedelta(hours=3)).replace(minute=0), 1),
            ("testchannel", (NOW - timedelta(minutes=10)).replace(minute=0), 1),
        ]
        due = await reads.ship_by_due(before=NOW + timedelta(hours=24), limit=10)
        assert [o.id for o in due] == [first.id]

        for text in ("co-1", "N-CO-1", "ada lovelace", "ADA@EXAMPLE", "sku-lap", "müller"):
            found = await reads.search(text, limit=10)
            assert found, text
        assert [o.id for o in await reads.search("müller", limit=10)] == [second.id]
        assert await reads.search("Hauptstr", limit=10) == []  # the address is not searched
        assert await reads.search("%", limit=10) == []

        messages = await reads.order_messages("testchannel", "main", "CO-1", limit=10)
        assert [m.dedupe_key for m in messages] == ["m-1", "m-2"]
        events = await reads.order_events(first.id, limit=10)
        assert [e.type for e in events] == ["order.received"]
