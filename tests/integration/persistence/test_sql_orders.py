"""Orders through the SQL unit of work: saving, versions, conflicts, rollback, listing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.integration.persistence.gating import HoldsTheCounter

from orderhub.adapters.persistence import SqlUnitOfWork, SqlUnitOfWorkFactory, create_engine
from orderhub.adapters.persistence.tables import channel_commands, feed_events, orders
from orderhub.application.ports import ChannelCommand, InboxMessage, OrderFilter
from orderhub.domain.capabilities import Capabilities
from orderhub.domain.errors import ConcurrencyConflict
from orderhub.domain.model import Order
from orderhub.domain.values import OrderStatus, Reason
from orderhub.metrics import FEED_EVENTS

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
MakeOrder = Callable[..., Order]


class Gated(HoldsTheCounter):
    """Stops right before COMMIT (all rows written, feed counter locked) until released."""

    def __init__(self, engine: AsyncEngine, release: asyncio.Event) -> None:
        super().__init__(engine, release.wait)


async def count(engine: AsyncEngine, table: sa.Table) -> int:
    async with engine.connect() as connection:
        return int(
            (await connection.execute(sa.select(sa.func.count()).select_from(table))).scalar_one()
        )


async def stored_version(engine: AsyncEngine, order_id: str) -> int:
    async with engine.connect() as connection:
        result = await connection.execute(
            sa.select(orders.c.version).where(orders.c.id == order_id)
        )
        return int(result.scalar_one())


async def feed_types(engine: AsyncEngine) -> list[tuple[int, str, str | None]]:
    async with engine.connect() as connection:
        result = await connection.execute(
            sa.select(feed_events.c.seq, feed_events.c.type, feed_events.c.order_id).order_by(
                feed_events.c.seq
            )
        )
        return [(row.seq, row.type, row.order_id) for row in result]


async def store(uow_factory: SqlUnitOfWorkFactory, order: Order) -> Order:
    async with uow_factory() as uow:
        uow.orders.add(order)
        await uow.commit()
    return order


async def test_new_order_is_stored_with_version_1_and_its_events_on_the_feed(
    uow_factory: SqlUnitOfWorkFactory, engine: AsyncEngine, make_order: MakeOrder
) -> None:
    order = make_order("CO-1")
    raised = [event.type.value for event in order.events]
    assert raised == ["order.received"]
    await store(uow_factory, order)

    assert order.version == 1
    assert order.events == []  # drained into the feed
    assert await stored_version(engine, order.id) == 1
    assert await feed_types(engine) == [(1, "order.received", order.id)]
    async with uow_factory() as uow:
        assert await uow.orders.get(order.id) is not None
        by_channel = await uow.orders.get_by_channel_id("testchannel", "main", "CO-1")
        assert by_channel is not None
        assert by_channel.id == order.id
        assert await uow.orders.get_by_channel_id("testchannel", "other", "CO-1") is None
        assert await uow.orders.get("no-such-order") is None


async def test_a_change_bumps_the_version_and_appends_its_events(
    uow_factory: SqlUnitOfWorkFactory,
    engine: AsyncEngine,
    make_order: MakeOrder,
    caps: Capabilities,
) -> None:
    order = await store(uow_factory, make_order("CO-1"))
    async with uow_factory() as uow:
        loaded = await uow.orders.get(order.id)
        assert loaded is not None
        loaded.accept(caps, now=T0 + timedelta(minutes=5))
        await uow.commit()
        assert loaded.version == 2

    async with uow_factory() as uow:
        again = await uow.orders.get(order.id)
    assert again is not None
    assert again.status is OrderStatus.READY_TO_SHIP
    assert again.updated_at == T0 + timedelta(minutes=5)
    assert again.version == 2
    assert [t for _, t, _ in await feed_types(engine)] == [
        "order.received",
        "order.accepted",
        "order.ready_to_ship",
    ]


async def test_loading_without_changing_writes_nothing(
    uow_factory: SqlUnitOfWorkFactory, engine: AsyncEngine, make_order: MakeOrder
) -> None:
    order = await store(uow_factory, make_order("CO-1"))
    async with uow_factory() as uow:
        await uow.orders.get(order.id)
        await uow.orders.list(OrderFilter(), after_seq=None, limit=10)
        await uow.commit()
    # no version bump: a reader never makes a concurrent writer fail
    assert await stored_version(engine, order.id) == 1
    assert len(await feed_types(engine)) == 1


async def test_one_instance_per_order_within_a_unit(
    uow_factory: SqlUnitOfWorkFactory, make_order: MakeOrder
) -> None:
    order = await store(uow_factory, make_order("CO-1"))
    async with uow_factory() as uow:
        first = await uow.orders.get(order.id)
        by_channel = await uow.orders.get_by_channel_id("testchannel", "main", "CO-1")
        listed = await uow.orders.list(OrderFilter(), after_seq=None, limit=10)
    assert first is by_channel is listed[0]


async def test_a_unit_can_commit_twice(
    uow_factory: SqlUnitOfWorkFactory,
    engine: AsyncEngine,
    make_order: MakeOrder,
    caps: Capabilities,
) -> None:
    order = make_order("CO-1")
    async with uow_factory() as uow:
        uow.orders.add(order)
        await uow.commit()
        order.accept(caps, now=T0 + timedelta(minutes=1))
        await uow.commit()
    assert order.version == 2
    assert await stored_version(engine, order.id) == 2
    assert len(await feed_types(engine)) == 3


async def test_leaving_without_commit_rolls_everything_back(
    uow_factory: SqlUnitOfWorkFactory,
    engine: AsyncEngine,
    make_order: MakeOrder,
    make_command: Callable[..., ChannelCommand],
    caps: Capabilities,
) -> None:
    stored = await store(uow_factory, make_order("CO-1"))
    async with uow_factory() as uow:
        new = make_order("CO-2")
        uow.orders.add(new)
        uow.commands.add(make_command(new))
        loaded = await uow.orders.get(stored.id)
        assert loaded is not None
        loaded.accept(caps, now=T0)
        uow.record("command.succeeded", order=loaded, data={"command_id": "c"})
        # no commit
    assert await count(engine, orders) == 1
    assert await count(engine, channel_commands) == 0
    assert len(await feed_types(engine)) == 1
    assert await stored_version(engine, stored.id) == 1


async def test_an_exception_rolls_back_even_after_statements_ran(
    uow_factory: SqlUnitOfWorkFactory,
    engine: AsyncEngine,
    make_order: MakeOrder,
    make_message: Callable[..., InboxMessage],
) -> None:
    async def fail_midway() -> None:
        async with uow_factory() as uow:
            uow.orders.add(make_order("CO-1"))
            assert await uow.inbox.add(make_message("k-1"))  # written at once
            await uow.cursors.set("testchannel", "main", "orders", "42")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await fail_midway()
    async with uow_factory() as uow:
        assert await uow.cursors.get("testchannel", "main", "orders") is None
        assert await uow.inbox.get(make_message("k-1").id) is None
    assert await count(engine, orders) == 0
    assert await feed_types(engine) == []


async def test_explicit_rollback_forgets_what_the_unit_held(
    uow_factory: SqlUnitOfWorkFactory, engine: AsyncEngine, make_order: MakeOrder
) -> None:
    order = make_order("CO-1")
    async with uow_factory() as uow:
        uow.orders.add(order)
        await uow.rollback()
        await uow.commit()  # nothing left to write
    assert await count(engine, orders) == 0
    assert await feed_types(engine) == []


async def test_a_second_order_for_the_same_channel_order_is_a_conflict(
    uow_factory: SqlUnitOfWorkFactory,
    engine: AsyncEngine,
    make_order: MakeOrder,
    make_command: Callable[..., ChannelCommand],
) -> None:
    first = await store(uow_factory, make_order("CO-1"))
    async with uow_factory() as uow:
        twin = make_order("CO-1")
        uow.orders.add(twin)
        uow.commands.add(make_command(twin))
        uow.record("order.updated", order=twin, data={})
        with pytest.raises(ConcurrencyConflict) as caught:
            await uow.commit()
    assert isinstance(caught.value.__cause__, IntegrityError)
    assert await count(engine, orders) == 1
    assert await count(engine, channel_commands) == 0
    assert await feed_types(engine) == [(1, "order.received", first.id)]
    # the same channel order id on another account is another order
    await store(uow_factory, make_order("CO-1", account="second"))
    assert await count(engine, orders) == 2


@pytest.mark.postgres
async def test_concurrent_changes_to_one_order_second_commit_conflicts(
    postgres_url: str, make_order: MakeOrder, caps: Capabilities
) -> None:
    engine = create_engine(postgres_url)
    factory = SqlUnitOfWorkFactory(engine)
    try:
        order = await store(factory, make_order("CO-1"))
        async with factory() as first, factory() as second:
            a = await first.orders.get(order.id)
            b = await second.orders.get(order.id)
            assert a is not None
            assert b is not None
            a.accept(caps, now=T0 + timedelta(minutes=1))
            b.reject(caps, reason=Reason.OUT_OF_STOCK, now=T0 + timedelta(minutes=2))
            await first.commit()
            with pytest.raises(ConcurrencyConflict, match="changed since it was read"):
                await second.commit()
            assert b.version == 1  # not bumped: nothing was written
        async with factory() as uow:
            stored = await uow.orders.get(order.id)
        assert stored is not None
        assert stored.status is OrderStatus.READY_TO_SHIP
        assert stored.version == 2
        assert [t for _, t, _ in await feed_types(engine)] == [
            "order.received",
            "order.accepted",
            "order.ready_to_ship",
        ]
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_a_writer_waiting_on_the_row_lock_still_sees_the_conflict(
    postgres_url: str, make_order: MakeOrder, caps: Capabilities
) -> None:
    """The second UPDATE blocks on the first one's row lock, then re-checks the version
    (READ COMMITTED re-evaluates the WHERE clause) and matches nothing."""
    engine = create_engine(postgres_url)
    factory = SqlUnitOfWorkFactory(engine)
    try:
        order = await store(factory, make_order("CO-1"))
        release = asyncio.Event()
        async with Gated(engine, release) as first, factory() as second:
            a = await first.orders.get(order.id)
            b = await second.orders.get(order.id)
            assert a is not None
            assert b is not None
            a.accept(caps, now=T0)
            b.reject(caps, reason=Reason.OUT_OF_STOCK, now=T0)
            first_commit = asyncio.create_task(first.commit())
            await asyncio.sleep(0.2)  # first holds the order row (and the feed counter)
            second_commit = asyncio.create_task(second.commit())
            await asyncio.sleep(0.2)
            assert not second_commit.done()  # waiting on the row lock
            release.set()
            await first_commit
            with pytest.raises(ConcurrencyConflict):
                await second_commit
        assert await stored_version(engine, order.id) == 2
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_concurrent_inserts_of_the_same_channel_order_one_wins(
    postgres_url: str, make_order: MakeOrder
) -> None:
    """The second INSERT waits for the first transaction (unique index entry in flight),
    then fails on the unique constraint once the first commits."""
    engine = create_engine(postgres_url)
    release = asyncio.Event()
    try:
        async with Gated(engine, release) as first, SqlUnitOfWork(engine) as second:
            first.orders.add(make_order("CO-1"))
            second.orders.add(make_order("CO-1"))
            first_commit = asyncio.create_task(first.commit())
            await asyncio.sleep(0.2)
            second_commit = asyncio.create_task(second.commit())
            await asyncio.sleep(0.2)
            assert not second_commit.done()
            release.set()
            await first_commit
            with pytest.raises(ConcurrencyConflict) as caught:
                await second_commit
            assert isinstance(caught.value.__cause__, IntegrityError)
        assert await count(engine, orders) == 1
        assert len(await feed_types(engine)) == 1
    finally:
        await engine.dispose()


async def test_concurrent_read_modify_write_loses_no_update(
    uow_factory: SqlUnitOfWorkFactory, make_order: MakeOrder, caps: Capabilities
) -> None:
    """Many tasks change one order at once, each retrying on conflict (as the services do):
    every change lands, the version counts them."""
    order = await store(uow_factory, make_order("CO-1", quantity=1))
    writers = 8

    async def touch(i: int) -> None:
        for _ in range(50):
            try:
                async with uow_factory() as uow:
                    loaded = await uow.orders.get(order.id)
                    assert loaded is not None
                    loaded.extras[f"writer-{i}"] = i
                    loaded.updated_at = T0 + timedelta(seconds=i)
                    await asyncio.sleep(0)
                    await uow.commit()
                    return
            except ConcurrencyConflict:
                await asyncio.sleep(0.01)
        raise AssertionError(f"writer {i} never got through")

    await asyncio.gather(*(touch(i) for i in range(writers)))
    async with uow_factory() as uow:
        final = await uow.orders.get(order.id)
    assert final is not None
    assert {k: v for k, v in final.extras.items() if k.startswith("writer-")} == {
        f"writer-{i}": i for i in range(writers)
    }
    assert final.version == 1 + writers


# --- listing ---------------------------------------------------------------------------


@pytest.fixture
async def catalogue(
    uow_factory: SqlUnitOfWorkFactory, make_order: MakeOrder, caps: Capabilities
) -> dict[str, Order]:
    """Seven orders over two channels and accounts, at known times and statuses."""
    made: dict[str, Order] = {}
    specs: list[tuple[str, str, str, int, int | None, bool]] = [
        # name, channel, account, minutes after T0, ship_by hours after T0, accept
        ("a", "topi", "main", 1, 24, False),
        ("b", "topi", "main", 2, 48, True),
        ("c", "topi", "second", 3, None, False),
        ("d", "octopia", "main", 4, 12, True),
        ("e", "octopia", "main", 5, 72, False),
        ("f", "topi", "main", 5, None, True),  # same updated_at as e: the id breaks the tie
        ("g", "spresso", "main", 6, 6, False),
    ]
    async with uow_factory() as uow:
        for name, channel, account, minutes, ship_by_hours, accept in specs:
            ship_by = None if ship_by_hours is None else T0 + timedelta(hours=ship_by_hours)
            order = make_order(
                f"CO-{name}", channel=channel, account=account, now=T0, ship_by=ship_by
            )
            if accept:
                order.accept(caps, now=T0)
            order.updated_at = T0 + timedelta(minutes=minutes)
            uow.orders.add(order)
            made[name] = order
        await uow.commit()
    async with uow_factory() as uow:  # with last_seq as the feed numbered it (in COMMIT)
        for name, order in made.items():
            stored = await uow.orders.get(order.id)
            assert stored is not None
            made[name] = stored
    return made


def names(found: list[Order] | Any, catalogue: dict[str, Order]) -> list[str]:
    by_id = {order.id: name for name, order in catalogue.items()}
    return [by_id[order.id] for order in found]


def expected_order(catalogue: dict[str, Order], *picked: str) -> list[str]:
    """By the feed sequence of each order's newest event (``last_seq``)."""
    return sorted(picked, key=lambda n: catalogue[n].last_seq)


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (OrderFilter(), "abcdefg"),
        (OrderFilter(status=OrderStatus.READY_TO_SHIP), "bdf"),
        (OrderFilter(status=OrderStatus.AWAITING_ACCEPTANCE), "aceg"),
        (OrderFilter(channel="topi"), "abcf"),
        (OrderFilter(channel="topi", account="main"), "abf"),
        (OrderFilter(account="second"), "c"),
        (OrderFilter(updated_after=T0 + timedelta(minutes=4)), "efg"),  # strictly after
        (OrderFilter(ship_by_before=T0 + timedelta(hours=24)), "dg"),  # strictly before
        (
            OrderFilter(
                channel="octopia",
                status=OrderStatus.AWAITING_ACCEPTANCE,
                updated_after=T0,
                ship_by_before=T0 + timedelta(days=7),
            ),
            "e",
        ),
        (OrderFilter(channel="nowhere"), ""),
    ],
)
async def test_list_filters(
    uow_factory: SqlUnitOfWorkFactory,
    catalogue: dict[str, Order],
    filters: OrderFilter,
    expected: str,
) -> None:
    async with uow_factory() as uow:
        found = await uow.orders.list(filters, after_seq=None, limit=100)
    assert names(list(found), catalogue) == expected_order(catalogue, *expected)


async def test_list_pages_by_last_seq_without_overlap_or_gap(
    uow_factory: SqlUnitOfWorkFactory, catalogue: dict[str, Order], caps: Capabilities
) -> None:
    assert len({o.last_seq for o in catalogue.values()}) == len(catalogue)
    pages: list[list[str]] = []
    after: int | None = None
    changed = False
    while True:
        async with uow_factory() as uow:
            page = list(await uow.orders.list(OrderFilter(), after_seq=after, limit=2))
            if pages and not changed:  # an order already read changes while we page
                a = await uow.orders.get(catalogue["a"].id)
                assert a is not None
                a.accept(caps, now=T0 + timedelta(hours=1))
                await uow.commit()
                changed = True
        if not page:
            break
        pages.append(names(page, catalogue))
        after = page[-1].last_seq
    listed = [n for p in pages for n in p]
    # every order once, and the one that changed once more, after the others
    assert listed == [*expected_order(catalogue, *"abcdefg"), "a"]


async def test_list_with_a_filter_and_a_cursor(
    uow_factory: SqlUnitOfWorkFactory, catalogue: dict[str, Order]
) -> None:
    b = catalogue["b"]
    async with uow_factory() as uow:
        found = await uow.orders.list(OrderFilter(channel="topi"), after_seq=b.last_seq, limit=10)
        assert await uow.orders.list(OrderFilter(), after_seq=None, limit=0) == []
    assert names(list(found), catalogue) == expected_order(catalogue, "c", "f")


async def test_committed_feed_events_are_counted_for_prometheus(
    uow_factory: SqlUnitOfWorkFactory, make_order: MakeOrder
) -> None:
    def received() -> float:
        return FEED_EVENTS.labels(type="order.received")._value.get()

    before = received()
    async with uow_factory() as uow:
        uow.orders.add(make_order("CO-metrics"))
        # not committed: nothing was written, nothing is counted
    assert received() == before
    async with uow_factory() as uow:
        uow.orders.add(make_order("CO-metrics"))
        await uow.commit()
    assert received() == before + 1
