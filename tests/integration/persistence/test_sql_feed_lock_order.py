"""The feed append takes its orders' row locks before the feed counter: a transaction that
saved an order and then appends its events, and another that appends events of the same
order (a command's outcome), queue up instead of deadlocking (found by ``make chaos``:
PostgreSQL aborted one of them, a WMS request answered 500 or an outcome waited a lease)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.integration.persistence.test_sql_migration_0002 import order_row

from orderhub.adapters.persistence import create_engine
from orderhub.adapters.persistence.feed import PendingEvent, append
from orderhub.adapters.persistence.tables import feed_events, orders

pytestmark = pytest.mark.postgres
BOUND_SECONDS = 30.0  # only reached when something is wrong


def event(order_id: str, kind: str) -> PendingEvent:
    return PendingEvent(
        type=kind,
        order_id=order_id,
        channel="testchannel",
        account="main",
        occurred_at=datetime(2026, 11, 30, tzinfo=UTC),
        data={},
    )


@pytest.fixture
async def pg(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(postgres_url)
    async with engine.begin() as connection:
        await connection.execute(
            sa.insert(orders), [{**order_row("O-1", "CO-1", 0), "needs_attention": False}]
        )
    yield engine
    await engine.dispose()


async def blocked_on_a_lock(engine: AsyncEngine) -> None:
    """Until a session of this database waits for a lock (bounded by the caller)."""
    query = sa.text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    async with engine.connect() as watcher:
        while not (await watcher.execute(query)).scalar_one():
            await watcher.rollback()  # a fresh snapshot of the activity view
            await asyncio.sleep(0.01)


async def test_a_save_then_append_and_an_outcome_of_the_same_order_queue_up(
    pg: AsyncEngine,
) -> None:
    saver = await pg.connect()
    outcome = await pg.connect()
    try:
        await saver.begin()
        # the order's save: its row is locked until the saver commits
        await saver.execute(
            sa.update(orders).where(orders.c.id == "O-1").values(version=orders.c.version + 1)
        )
        await outcome.begin()
        # a command's outcome: with the counter taken first, it would hold the counter and
        # wait for the order's row, while the saver waits for the counter
        outcome_append = asyncio.create_task(append(outcome, [event("O-1", "command.succeeded")]))
        async with asyncio.timeout(BOUND_SECONDS):
            await blocked_on_a_lock(pg)  # it took what it takes first, and waits
            await append(saver, [event("O-1", "order.accepted")])
            await saver.commit()
            await outcome_append
            await outcome.commit()
    finally:
        await saver.close()
        await outcome.close()
    async with pg.connect() as connection:
        rows = (await connection.execute(sa.select(feed_events.c.seq, feed_events.c.type))).all()
        stamped = (
            await connection.execute(sa.select(orders.c.last_seq).where(orders.c.id == "O-1"))
        ).scalar_one()
    assert sorted(rows) == [(1, "order.accepted"), (2, "command.succeeded")]
    assert stamped == 2
