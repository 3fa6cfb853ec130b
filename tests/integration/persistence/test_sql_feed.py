"""The feed is gapless: a reader that follows ``after=last_seen`` never skips an event.

The PostgreSQL tests force the interleaving that breaks a ``bigserial`` feed (the
transaction that started first commits last) and run many writers against a polling
reader; the same stress test runs on SQLite to show its writers queue up instead of
failing with "database is locked"."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.integration.persistence.gating import HoldsTheCounter

from orderhub.adapters.persistence import (
    SqlUnitOfWork,
    SqlUnitOfWorkFactory,
    create_engine,
    migrate,
)
from orderhub.adapters.persistence.engine import SQLITE_BEGIN_OPTION
from orderhub.adapters.persistence.feed import PendingEvent, append_in_statement
from orderhub.adapters.persistence.tables import feed_counter
from orderhub.application.ports import FeedEntry, InboxMessage
from orderhub.domain.errors import ConcurrencyConflict
from orderhub.domain.model import Order

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
MakeOrder = Callable[..., Order]


class TickingClock:
    def __init__(self) -> None:
        self.current = T0

    def now(self) -> datetime:
        self.current += timedelta(seconds=1)
        return self.current


@dataclass
class Reader:
    """A feed consumer: polls ``read(after=last_seen)`` and checks every page it gets."""

    factory: Callable[[], SqlUnitOfWork]
    page: int = 5
    last_seen: int = 0
    seen: list[FeedEntry] = field(default_factory=list)
    reads: int = 0
    progress: asyncio.Event = field(default_factory=asyncio.Event)

    async def poll(self) -> list[FeedEntry]:
        async with self.factory() as uow:
            entries = list(await uow.feed.read(after=self.last_seen, limit=self.page))
        self.reads += 1
        for entry in entries:
            # gapless: the next event is always exactly the one after the last seen
            assert entry.seq == self.last_seen + 1, f"skipped from {self.last_seen} to {entry.seq}"
            self.last_seen = entry.seq
            self.seen.append(entry)
        if entries:
            self.progress.set()
        return entries

    async def wait_until_seen(self, count: int, *, seconds: float = 10.0) -> None:
        async with asyncio.timeout(seconds):
            while len(self.seen) < count:
                self.progress.clear()
                await self.progress.wait()

    async def follow(self, stop: asyncio.Event, *, interval: float = 0.005) -> None:
        while not stop.is_set():
            await self.poll()
            await asyncio.sleep(interval)
        while await self.poll():  # drain what the last writers committed
            pass


async def record(factory: Callable[[], SqlUnitOfWork], data: dict[str, Any]) -> None:
    """One unit of work that records one event of no order and commits."""
    async with factory() as uow:
        uow.record("command.succeeded", order=None, data=data)
        await uow.commit()


async def pending_rows(engine: AsyncEngine) -> int:
    """``feed_pending`` rows seen from a session of its own: committed, never numbered."""
    async with engine.connect() as connection:
        found = await connection.execute(sa.text("SELECT count(*) FROM feed_pending"))
        return int(found.scalar_one())


async def read_all(factory: Callable[[], SqlUnitOfWork]) -> list[FeedEntry]:
    async with factory() as uow:
        return list(await uow.feed.read(after=0, limit=10_000))


# --- basics (both backends) ----------------------------------------------------------------


async def test_order_events_then_recorded_ones_in_one_commit(
    engine: AsyncEngine, make_order: MakeOrder
) -> None:
    factory = SqlUnitOfWorkFactory(engine, clock=TickingClock())
    order = make_order("CO-1")
    raised = [(event.type.value, event.data) for event in order.events]
    async with factory() as uow:
        uow.orders.add(order)
        uow.record("command.succeeded", order=order, data={"command_id": "c-1", "attempts": 1})
        uow.record("command.failed", order=None, data={"command_id": "c-2", "error": None})
        await uow.commit()
    feed = await read_all(factory)
    assert [e.seq for e in feed] == [1, 2, 3]
    assert [(e.type, e.data) for e in feed[:1]] == raised
    assert feed[0].order_id == order.id
    assert feed[0].channel == "testchannel"
    assert feed[0].occurred_at == order.updated_at
    assert (feed[1].type, feed[1].order_id, feed[1].channel) == (
        "command.succeeded",
        order.id,
        "testchannel",
    )
    assert feed[1].data == {"command_id": "c-1", "attempts": 1}
    assert (feed[2].order_id, feed[2].channel, feed[2].data) == (
        None,
        None,
        {"command_id": "c-2", "error": None},
    )
    assert feed[1].occurred_at == T0 + timedelta(seconds=1)  # the unit's clock, at record()
    assert feed[2].occurred_at.tzinfo is UTC


async def test_read_after_and_limit(uow_factory: SqlUnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        for i in range(7):
            uow.record("command.succeeded", order=None, data={"i": i})
        await uow.commit()
    async with uow_factory() as uow:
        assert [e.seq for e in await uow.feed.read(after=0, limit=3)] == [1, 2, 3]
        assert [e.seq for e in await uow.feed.read(after=3, limit=3)] == [4, 5, 6]
        assert [e.data["i"] for e in await uow.feed.read(after=6, limit=3)] == [6]
        assert await uow.feed.read(after=7, limit=3) == []
        assert await uow.feed.read(after=0, limit=0) == []


async def test_a_commit_without_events_takes_no_numbers(
    uow_factory: SqlUnitOfWorkFactory, make_message: Callable[..., InboxMessage]
) -> None:
    async with uow_factory() as uow:
        await uow.inbox.add(make_message("k"))
        await uow.commit()
    async with uow_factory() as uow:
        uow.record("command.succeeded", order=None, data={})
        await uow.commit()
    assert [e.seq for e in await read_all(uow_factory)] == [1]


async def test_rolled_back_and_failed_commits_leave_no_hole(
    uow_factory: SqlUnitOfWorkFactory, make_order: MakeOrder
) -> None:
    async with uow_factory() as uow:
        uow.orders.add(make_order("CO-1"))
        await uow.commit()
    async with uow_factory() as uow:  # left without commit
        uow.orders.add(make_order("CO-2"))
        uow.record("command.succeeded", order=None, data={})
    async with uow_factory() as uow:  # fails at commit after numbering nothing
        uow.orders.add(make_order("CO-1"))
        uow.record("command.succeeded", order=None, data={})
        with pytest.raises(ConcurrencyConflict):
            await uow.commit()
    async with uow_factory() as uow:
        uow.orders.add(make_order("CO-3"))
        await uow.commit()
    feed = await read_all(uow_factory)
    assert [e.seq for e in feed] == [1, 2]
    assert [e.data["channel_order_id"] for e in feed] == ["CO-1", "CO-3"]


async def test_numbers_rolled_back_after_numbering_are_reused(engine: AsyncEngine) -> None:
    """The counter update itself is undone by a rollback: the next writer continues from
    the last committed number. The crash window named "numbered, not yet committed": on
    PostgreSQL the session dies inside COMMIT, after the trigger numbered the events."""

    async def crash() -> None:
        raise RuntimeError("crash between numbering and COMMIT")

    async with HoldsTheCounter(engine, crash) as failing:
        failing.record("command.succeeded", order=None, data={"lost": True})
        with pytest.raises(RuntimeError):
            await failing.commit()
    factory = SqlUnitOfWorkFactory(engine)
    async with factory() as uow:
        uow.record("command.succeeded", order=None, data={"kept": True})
        await uow.commit()
    assert [(e.seq, e.data) for e in await read_all(factory)] == [(1, {"kept": True})]


# --- the pitfall, forced (PostgreSQL) -------------------------------------------------------


@pytest.mark.postgres
async def test_the_writer_holding_the_counter_makes_later_writers_wait(
    pg_engine: AsyncEngine, make_order: MakeOrder, make_message: Callable[..., InboxMessage]
) -> None:
    """A started writing first and numbered its event first, but is slow to COMMIT; B
    commits meanwhile. B must not become visible with a higher number before A: it waits
    for A's commit, then numbers after it. The reader sees both, in order, skipping none."""
    factory = SqlUnitOfWorkFactory(pg_engine)
    release_a = asyncio.Event()
    reader = Reader(factory)
    stop = asyncio.Event()
    following = asyncio.create_task(reader.follow(stop))

    async with HoldsTheCounter(pg_engine, release_a.wait) as a, factory() as b:
        await a.inbox.add(make_message("a"))  # A's transaction writes first
        a.orders.add(order_a := make_order("CO-A"))
        await b.inbox.add(make_message("b"))
        b.orders.add(order_b := make_order("CO-B"))

        commit_a = asyncio.create_task(a.commit())
        await asyncio.wait_for(a.numbered.wait(), 5)  # A holds the counter, not committed
        commit_b = asyncio.create_task(b.commit())
        await asyncio.sleep(0.3)
        assert not commit_b.done()  # B waits for the counter lock
        assert reader.seen == []  # nothing committed, nothing visible
        reads_before = reader.reads

        release_a.set()
        await commit_a
        await commit_b

    await reader.wait_until_seen(2)
    stop.set()
    await following
    assert reader.reads > reads_before
    assert [(e.seq, e.order_id) for e in reader.seen] == [(1, order_a.id), (2, order_b.id)]


@pytest.mark.postgres
async def test_a_writer_slow_to_send_commit_makes_no_one_wait(
    pg_engine: AsyncEngine, make_order: MakeOrder
) -> None:
    """On PostgreSQL COMMIT itself numbers the events (migration 0009): a writer that has
    handed its events to the feed but whose client has not sent COMMIT yet (a busy event
    loop) holds no counter. B commits meanwhile and is numbered first; A after it. Nothing
    is left in ``feed_pending``."""
    factory = SqlUnitOfWorkFactory(pg_engine)
    release_a = asyncio.Event()
    reached_a = asyncio.Event()

    class SlowToCommit(SqlUnitOfWork):
        async def _before_commit(self) -> None:
            reached_a.set()
            await release_a.wait()

    async with SlowToCommit(pg_engine) as a, factory() as b:
        a.orders.add(order_a := make_order("CO-A"))
        b.orders.add(order_b := make_order("CO-B"))
        commit_a = asyncio.create_task(a.commit())
        await asyncio.wait_for(reached_a.wait(), 5)  # A's events handed over, no COMMIT yet
        await asyncio.wait_for(b.commit(), 5)  # B is not kept waiting
        assert [(e.seq, e.order_id) for e in await read_all(factory)] == [(1, order_b.id)]
        release_a.set()
        await asyncio.wait_for(commit_a, 5)

    assert [(e.seq, e.order_id) for e in await read_all(factory)] == [
        (1, order_b.id),
        (2, order_a.id),
    ]
    async with factory() as uow:
        stored = await uow.orders.get(order_a.id)
    assert stored is not None
    assert stored.last_seq == 2
    assert await pending_rows(pg_engine) == 0


@pytest.mark.postgres
async def test_a_database_before_0009_is_numbered_in_the_statement_until_migrated(
    empty_postgres_url: str,
) -> None:
    """This version rolled out before ``orderhub migrate`` ran (no ``feed_pending``): its
    writes still go through, numbered in their statement; once the migration has run, the
    same process numbers in COMMIT, continuing the same feed."""
    await migrate(empty_postgres_url, revision="0008")
    engine = create_engine(empty_postgres_url)
    factory = SqlUnitOfWorkFactory(engine)
    try:
        await record(factory, {"n": 1})
        await migrate(empty_postgres_url)
        await record(factory, {"n": 2})
        assert [(e.seq, e.data) for e in await read_all(factory)] == [(1, {"n": 1}), (2, {"n": 2})]
        assert await pending_rows(engine) == 0
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_after_a_downgrade_below_0009_one_write_fails_and_the_next_goes_through(
    empty_postgres_url: str,
) -> None:
    """A process that found ``feed_pending`` remembers it; if the table goes (a downgrade,
    a restore from before 0009), the write that meets its absence fails and rolls back (its
    job is retried), and the next one numbers in its statement: no restart needed."""
    await migrate(empty_postgres_url)
    engine = create_engine(empty_postgres_url)
    factory = SqlUnitOfWorkFactory(engine)
    try:
        await record(factory, {"n": 1})
        async with engine.begin() as connection:
            await connection.execute(sa.text("DROP TABLE feed_pending CASCADE"))
        async with factory() as uow:
            uow.record("command.succeeded", order=None, data={"lost": True})
            with pytest.raises(sa.exc.DBAPIError, match="feed_pending"):
                await uow.commit()
        await record(factory, {"n": 2})
        assert [(e.seq, e.data) for e in await read_all(factory)] == [(1, {"n": 1}), (2, {"n": 2})]
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_the_numbering_trigger_fires_for_a_replica_role_session_too(
    pg_engine: AsyncEngine,
) -> None:
    """``ENABLE ALWAYS``: a session in ``session_replication_role = replica`` (a
    logical-replication apply, a restore script) still has its events numbered; a trigger
    that did not fire would leave them in ``feed_pending``, committed and never numbered."""

    class ReplicaRole(SqlUnitOfWork):
        async def _before_commit(self) -> None:
            await self._tx.conn().execute(sa.text("SET LOCAL session_replication_role = replica"))

    async with ReplicaRole(pg_engine) as uow:
        uow.record("command.succeeded", order=None, data={"replica": True})
        await uow.commit()
    factory = SqlUnitOfWorkFactory(pg_engine)
    assert [(e.seq, e.data) for e in await read_all(factory)] == [(1, {"replica": True})]
    async with pg_engine.connect() as connection:
        enabled = await connection.execute(
            sa.text("SELECT tgenabled::text FROM pg_trigger WHERE tgname = 'feed_pending_number'")
        )
        assert enabled.scalar_one() == "A"
    assert await pending_rows(pg_engine) == 0


@pytest.mark.postgres
async def test_a_commit_held_by_the_test_that_fails_by_itself_says_why(
    pg_engine: AsyncEngine,
) -> None:
    """The test harness's own check: a COMMIT that fails while a test holds it raises its
    own error (here the numbering's: no counter row), not a timeout of the hold."""
    async with pg_engine.begin() as connection:
        await connection.execute(sa.delete(feed_counter))

    async def gate() -> None:
        return None

    async with HoldsTheCounter(pg_engine, gate) as uow:
        uow.record("command.succeeded", order=None, data={})
        async with asyncio.timeout(10):
            with pytest.raises(sa.exc.DBAPIError, match="run the migrations"):
                await uow.commit()


@pytest.mark.postgres
async def test_the_transaction_that_started_first_and_commits_last_is_not_skipped(
    pg_engine: AsyncEngine, make_order: MakeOrder, make_message: Callable[..., InboxMessage]
) -> None:
    """The bigserial pitfall: A begins (and writes) before B, B commits first. With numbers
    drawn at commit, B gets 1 and A gets 2: the reader, which saw B first, still sees A."""
    factory = SqlUnitOfWorkFactory(pg_engine)
    reader = Reader(factory)
    stop = asyncio.Event()
    following = asyncio.create_task(reader.follow(stop))

    async with factory() as a:
        await a.inbox.add(make_message("a"))
        a.orders.add(order_a := make_order("CO-A"))
        async with factory() as b:
            await b.inbox.add(make_message("b"))
            b.orders.add(order_b := make_order("CO-B"))
            await b.commit()
        await reader.wait_until_seen(1)  # the reader moved past B
        assert reader.last_seen == 1
        await a.commit()

    await reader.wait_until_seen(2)
    stop.set()
    await following
    assert [(e.seq, e.order_id) for e in reader.seen] == [(1, order_b.id), (2, order_a.id)]


# --- many writers, one reader (both backends) ---------------------------------------------


async def test_many_concurrent_writers_and_a_polling_reader(
    database_url: str, make_order: MakeOrder
) -> None:
    """20 writers x 5 rounds commit orders and recorded events at random moments; some roll back,
    some pause while holding the counter lock (on PostgreSQL: inside COMMIT). On
    PostgreSQL 5 writers from before migration 0009 (numbering in their statement) take
    part too, as in a rolling upgrade. The reader's view equals the final feed, numbered
    1..N without holes, and it never saw a page that skipped a number; ``feed_pending`` is
    left empty."""
    engine = create_engine(database_url)
    factory = SqlUnitOfWorkFactory(engine)
    # the reader has its own pool, as the web process has: writers never starve it; on
    # SQLite it reads from WAL snapshots (deferred BEGIN) instead of queueing with writers
    reader_engine = create_engine(database_url, execution_options={SQLITE_BEGIN_OPTION: "DEFERRED"})
    rng = random.Random(20260301)
    writers, rounds = 20, 5
    reader = Reader(SqlUnitOfWorkFactory(reader_engine), page=1000)  # keeps up with writers
    stop = asyncio.Event()
    expected: list[str] = []  # what was committed, by a label in the event data

    async def pause() -> None:
        await asyncio.sleep(rng.uniform(0, 0.01))

    async def hold_the_counter() -> None:
        await asyncio.sleep(rng.uniform(0, 0.02))

    old_labels: list[str] = []

    async def writer_from_before_0009(w: int) -> None:
        """A process older than migration 0009 during a rolling upgrade (PostgreSQL): it
        numbers in its own statement and holds the counter across a pause until COMMIT."""
        for r in range(rounds):
            label = f"old-w{w}-r{r}"
            async with engine.connect() as connection:
                event = PendingEvent(
                    type="command.succeeded",
                    order_id=None,
                    channel=None,
                    occurred_at=T0,
                    data={"label": label},
                )
                await append_in_statement(connection, [event])
                await hold_the_counter()
                if rng.random() < 0.2:
                    await connection.rollback()
                    continue
                await connection.commit()
                old_labels.append(label)

    async def writer(w: int) -> None:
        for r in range(rounds):
            label = f"w{w}-r{r}"
            roll_back = rng.random() < 0.2
            uow: SqlUnitOfWork = (
                HoldsTheCounter(engine, hold_the_counter) if rng.random() < 0.5 else factory()
            )
            async with uow:
                order = make_order(f"CO-{label}")
                uow.orders.add(order)
                for i in range(rng.randint(0, 2)):
                    uow.record("command.succeeded", order=order, data={"label": f"{label}-{i}"})
                await pause()
                if roll_back:
                    continue  # leave without commit
                await uow.commit()
                expected.append(order.id)

    try:
        following = asyncio.create_task(reader.follow(stop, interval=0.002))
        postgres = engine.dialect.name == "postgresql"
        await asyncio.gather(
            *(writer(w) for w in range(writers)),
            *(writer_from_before_0009(w) for w in range(5 if postgres else 0)),
        )
        stop.set()
        await following
        final = await read_all(factory)
        if postgres:
            assert await pending_rows(engine) == 0  # every pending row numbered by its COMMIT
    finally:
        await engine.dispose()
        await reader_engine.dispose()

    assert [e.seq for e in final] == list(range(1, len(final) + 1))
    assert [(e.seq, e.type, e.data) for e in reader.seen] == [
        (e.seq, e.type, e.data) for e in final
    ]
    received = [e.order_id or "" for e in final if e.type == "order.received"]
    assert sorted(received) == sorted(expected)  # every committed order once, no other
    from_before = [e.data["label"] for e in final if str(e.data.get("label")).startswith("old")]
    assert sorted(from_before) == sorted(old_labels)
    assert len(old_labels) > 5 or not postgres  # the old writers really took part
    assert len(expected) > writers * rounds // 2  # most rounds committed
    assert reader.reads > 10  # the reader really ran alongside the writers


@pytest.mark.postgres
async def test_events_a_disabled_trigger_left_unnumbered_are_counted_and_can_be_numbered(
    pg_engine: AsyncEngine,
) -> None:
    """Someone disabled the numbering trigger: the commit goes through and its events stay
    in ``feed_pending``. The overview counts them (the ``orderhub_feed_unnumbered_events``
    gauge and its alert); the recovery of docs/feed.md numbers them."""
    factory = SqlUnitOfWorkFactory(pg_engine)
    disable = "ALTER TABLE feed_pending DISABLE TRIGGER feed_pending_number"
    enable = "ALTER TABLE feed_pending ENABLE ALWAYS TRIGGER feed_pending_number"
    async with pg_engine.begin() as connection:
        await connection.execute(sa.text(disable))
    try:
        async with factory() as uow:
            uow.record("command.succeeded", order=None, data={"n": 1})
            uow.record("command.succeeded", order=None, data={"n": 2})
            await uow.commit()
    finally:
        async with pg_engine.begin() as connection:
            await connection.execute(sa.text(enable))
    async with factory() as uow:
        assert await uow.overview.feed_unnumbered() == 2
    assert await read_all(factory) == []
    async with pg_engine.begin() as connection:  # the recovery docs/feed.md gives
        stranded = [
            row[0] for row in await connection.execute(sa.text("SELECT id FROM feed_pending"))
        ]
        await connection.execute(
            sa.text(
                "INSERT INTO feed_pending (types, order_ids, channels, accounts, occurred, data)"
                " SELECT types, order_ids, channels, accounts, occurred, data FROM feed_pending"
                " WHERE id = ANY(:ids)"
            ),
            {"ids": stranded},
        )
        await connection.execute(
            sa.text("DELETE FROM feed_pending WHERE id = ANY(:ids)"), {"ids": stranded}
        )
    async with factory() as uow:
        assert await uow.overview.feed_unnumbered() == 0
    assert [(e.seq, e.data) for e in await read_all(factory)] == [(1, {"n": 1}), (2, {"n": 2})]
