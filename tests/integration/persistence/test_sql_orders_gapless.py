"""The orders list pages by ``last_seq`` (the feed number of each order's newest event, set
in the commit that numbers it) and is as gapless as the feed: a reader that follows
``list(after_seq=last seen)`` never misses an order change, even when the transaction that
started first commits last, or one holds the feed counter while others wait.

Mirrors ``test_sql_feed.py``: forced interleavings on PostgreSQL, then many concurrent
writers (some rolled back, some pausing while they hold the counter) against a polling
reader on both backends."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.integration.persistence.gating import HoldsTheCounter
from tests.integration.persistence.pipeline_support import (
    ACCOUNT,
    CHANNEL,
    WAIT_SECONDS,
    order_body,
)
from uuid_utils import uuid7

from orderhub.adapters.persistence import SqlUnitOfWork, SqlUnitOfWorkFactory, create_engine
from orderhub.adapters.persistence.engine import SQLITE_BEGIN_OPTION
from orderhub.application.ports import OrderFilter
from orderhub.domain.model import ChannelSnapshot, Order
from orderhub.testing.channel import decode_orders, to_snapshot, topi_like

T0: Final = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
CAPS: Final = topi_like()


def new_id() -> str:
    return str(uuid7())


def snapshot(channel_order_id: str, status: str) -> ChannelSnapshot:
    [doc] = decode_orders(order_body(channel_order_id, status=status))
    return to_snapshot(doc)


def new_order(channel_order_id: str) -> Order:
    return Order.receive(
        snapshot(channel_order_id, "created"),
        order_id=new_id(),
        channel=CHANNEL,
        account=ACCOUNT,
        caps=CAPS,
        now=T0,
        new_id=new_id,
    )


def change(order: Order, status: str, *, at: datetime) -> None:
    """What a channel message does: a new channel status (one ``order.updated`` event)."""
    order.apply(snapshot(order.channel_order_id, status), caps=CAPS, now=at, new_id=new_id)
    assert order.events, "the change must raise an event"


@dataclass(frozen=True)
class Seen:
    order_id: str
    last_seq: int
    channel_status: str


@dataclass
class ListReader:
    """A warehouse client following the orders list: ``after_seq`` = the last one seen.

    A *look* pages until a page comes back short (the reader caught up), ``page`` orders
    at a time; ``follow`` looks again and again."""

    factory: Callable[[], SqlUnitOfWork]
    page: int = 3
    cursor: int | None = None
    seen: list[Seen] = field(default_factory=list)
    reads: int = 0
    looks_started: int = 0
    looks: int = 0
    looked: asyncio.Event = field(default_factory=asyncio.Event)

    async def poll(self) -> list[Seen]:
        async with self.factory() as uow:
            orders = await uow.orders.list(OrderFilter(), after_seq=self.cursor, limit=self.page)
        self.reads += 1
        page = [Seen(o.id, o.last_seq, o.channel_status) for o in orders]
        for item in page:
            assert self.cursor is None or item.last_seq > self.cursor
            self.cursor = item.last_seq
        self.seen.extend(page)
        return page

    async def look(self) -> None:
        self.looks_started += 1
        while len(await self.poll()) == self.page:
            pass
        self.looks += 1
        self.looked.set()

    async def wait_for_a_look_after_now(self) -> None:
        """Until a look that starts after this call has finished."""
        begun = self.looks_started
        async with asyncio.timeout(WAIT_SECONDS):
            while self.looks <= begun:
                self.looked.clear()
                await self.looked.wait()

    async def follow(self, stop: asyncio.Event, *, interval: float = 0.002) -> None:
        while not stop.is_set():
            await self.look()
            await asyncio.sleep(interval)
        await self.look()  # what the last writers committed

    def latest(self, order_id: str) -> int:
        return max((s.last_seq for s in self.seen if s.order_id == order_id), default=0)


async def store(factory: SqlUnitOfWorkFactory, *orders: Order) -> None:
    async with factory() as uow:
        for order in orders:
            uow.orders.add(order)
        await uow.commit()
    for order in orders:
        order.last_seq = await stored_last_seq(factory, order.id)


async def stored_last_seq(factory: SqlUnitOfWorkFactory, order_id: str) -> int:
    """The order's ``last_seq`` as committed: on PostgreSQL COMMIT numbers the events, so
    the unit of work that committed does not learn it."""
    async with factory() as uow:
        stored = await uow.orders.get(order_id)
    assert stored is not None
    return stored.last_seq


async def wait_for_a_lock_waiter(engine: AsyncEngine) -> None:
    """Until some session of this database waits for a lock (the counter row)."""
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            async with engine.connect() as connection:
                waiting = await connection.scalar(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                )
            if waiting:
                return
            await asyncio.sleep(0.01)


# --- forced interleavings (PostgreSQL) ----------------------------------------------------


@pytest.mark.postgres
async def test_a_change_committed_while_another_holds_the_counter_is_not_skipped(
    pg_engine: AsyncEngine,
) -> None:
    """A numbered its change to X first and is slow to COMMIT; B changed Y meanwhile. B
    waits for the counter; the list shows neither until A commits, then X before Y."""
    factory = SqlUnitOfWorkFactory(pg_engine)
    x, y = new_order("T-X"), new_order("T-Y")
    await store(factory, x, y)
    reader = ListReader(factory)
    await reader.look()
    assert [s.order_id for s in reader.seen] == [x.id, y.id]
    release_a = asyncio.Event()

    async with HoldsTheCounter(pg_engine, release_a.wait) as a, factory() as b:
        order_x = await a.orders.get(x.id)
        order_y = await b.orders.get(y.id)
        assert order_x is not None
        assert order_y is not None
        change(order_x, "x-changed", at=T0 + timedelta(minutes=1))
        change(order_y, "y-changed", at=T0 + timedelta(minutes=1))
        commit_a = asyncio.create_task(a.commit())
        await asyncio.wait_for(a.numbered.wait(), WAIT_SECONDS)
        commit_b = asyncio.create_task(b.commit())
        await wait_for_a_lock_waiter(pg_engine)  # B waits for the counter A holds
        assert not commit_b.done()
        assert await reader.poll() == []  # nothing committed, nothing listed
        release_a.set()
        await asyncio.wait_for(commit_a, WAIT_SECONDS)
        await asyncio.wait_for(commit_b, WAIT_SECONDS)

    await reader.look()
    assert [(s.order_id, s.channel_status) for s in reader.seen[2:]] == [
        (x.id, "x-changed"),
        (y.id, "y-changed"),
    ]
    assert reader.seen[2].last_seq < reader.seen[3].last_seq


@pytest.mark.postgres
async def test_the_change_that_started_first_and_commits_last_is_not_skipped(
    pg_engine: AsyncEngine,
) -> None:
    """A reads and changes X, B changes Y and commits, the reader moves past Y; A commits
    after: X is listed after Y, not behind the reader's cursor."""
    factory = SqlUnitOfWorkFactory(pg_engine)
    x, y = new_order("T-X"), new_order("T-Y")
    await store(factory, x, y)
    reader = ListReader(factory)
    await reader.look()

    async with factory() as a:
        order_x = await a.orders.get(x.id)
        assert order_x is not None
        change(order_x, "x-changed", at=T0 + timedelta(minutes=1))
        async with factory() as b:
            order_y = await b.orders.get(y.id)
            assert order_y is not None
            change(order_y, "y-changed", at=T0 + timedelta(minutes=2))
            await b.commit()
        order_y.last_seq = await stored_last_seq(factory, y.id)
        await reader.look()
        assert reader.seen[-1] == Seen(y.id, order_y.last_seq, "y-changed")
        await a.commit()
        order_x.last_seq = await stored_last_seq(factory, x.id)

    await reader.look()
    assert reader.seen[-1] == Seen(x.id, order_x.last_seq, "x-changed")
    assert order_x.last_seq > order_y.last_seq


# --- many writers, one reader (both backends) -----------------------------------------------


async def test_concurrent_writers_and_a_paging_reader_miss_no_order_change(
    database_url: str,
) -> None:
    """12 writers change orders of their own 6 times each, at random moments: mostly an
    order no one changed since it was stored (a missed change would never be listed again),
    sometimes one they changed before. Some roll back; half hold the counter until the
    reader has looked (others may commit meanwhile). A reader pages the list, 3 at a
    time, all along. Every committed change is listed at or after its own ``last_seq``,
    with the content that ``last_seq`` was committed with; each order's newest version
    is seen."""
    engine = create_engine(database_url)
    factory = SqlUnitOfWorkFactory(engine)
    reader_engine = create_engine(database_url, execution_options={SQLITE_BEGIN_OPTION: "DEFERRED"})
    rng = random.Random(20260301)
    writers, rounds = 12, 6
    # per writer: one order per round, and a "hot" one (last) changed again and again
    owned = {w: [new_order(f"T-{w}-{k}") for k in range(rounds + 1)] for w in range(writers)}
    committed: list[Seen] = []  # each committed change: its order, last_seq and content
    reader = ListReader(SqlUnitOfWorkFactory(reader_engine))
    stop = asyncio.Event()

    async def hold_the_counter() -> None:
        """The reader looks while this change is numbered but not committed (and others
        may commit theirs meanwhile)."""
        await reader.wait_for_a_look_after_now()

    async def writer(w: int) -> None:
        for r in range(rounds):
            order_id = owned[w][-1 if rng.random() < 0.3 else r].id
            roll_back = rng.random() < 0.2
            uow: SqlUnitOfWork = (
                HoldsTheCounter(engine, hold_the_counter) if rng.random() < 0.5 else factory()
            )
            async with uow:
                order = await uow.orders.get(order_id)
                assert order is not None
                status = f"w{w}-r{r}"
                change(order, status, at=T0 + timedelta(seconds=r + 1))
                await asyncio.sleep(rng.uniform(0, 0.01))
                if roll_back:
                    continue  # leave without commit
                await uow.commit()
                committed.append(Seen(order.id, await stored_last_seq(factory, order.id), status))

    try:
        await store(factory, *(o for orders in owned.values() for o in orders))
        await reader.look()  # caught up before the writers start
        following = asyncio.create_task(reader.follow(stop))
        async with asyncio.timeout(WAIT_SECONDS * 4):
            await asyncio.gather(*(writer(w) for w in range(writers)))
            stop.set()
            await following
        async with factory() as uow:
            final = list(await uow.orders.list(OrderFilter(), after_seq=None, limit=10_000))
    finally:
        await engine.dispose()
        await reader_engine.dispose()

    assert len(committed) > writers * rounds // 2  # most rounds committed
    assert reader.looks > 10  # the reader ran alongside the writers
    seen = set(reader.seen)
    for change_ in committed:  # listed at or after its change, never skipped
        assert reader.latest(change_.order_id) >= change_.last_seq, change_
    assert {(s.order_id, s.last_seq) for s in seen} <= {
        (s.order_id, s.last_seq) for s in committed
    } | {(o.id, o.last_seq) for orders in owned.values() for o in orders}
    by_seq = {c.last_seq: c for c in committed}
    for s in seen:  # what is listed under a last_seq is what that commit wrote
        if s.last_seq in by_seq:
            assert s == by_seq[s.last_seq]
    for order in final:  # each order's newest version was listed
        assert Seen(order.id, order.last_seq, order.channel_status) in seen
