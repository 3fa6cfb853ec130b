"""API keys limited to channels and accounts, on PostgreSQL and SQLite: every route of the
API probed (the filters are the queries'), orders and feed paged, and migration 0006
giving existing feed events their order's account."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any, cast

import httpx
import pytest
import sqlalchemy as sa
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.integration.persistence.test_sql_migration_0002 import T0, order_row
from tests.unit.web import test_web_key_limits as unit
from tests.unit.web.limits_probe import KEYS, build_account, probe
from tests.unit.web.support import FULL, Harness, fake_hub, stub_registry

from orderhub.adapters.persistence import SqlUnitOfWorkFactory, create_engine, migrate
from orderhub.application.access import AccountLimit
from orderhub.entrypoints.web import WebSettings, create_app
from orderhub.testing.fakes import FakeDatabase, FixedClock, RecordingQueue


@pytest.fixture
async def harness(engine: AsyncEngine) -> AsyncIterator[Harness]:
    clock = FixedClock()
    queue = RecordingQueue()
    registry = stub_registry(dataclasses.replace(FULL, invoices=True))
    hub = fake_hub(
        registry,
        db=FakeDatabase(),  # unused: the hub's units of work are the database's
        clock=clock,
        queue=queue,
        uow=SqlUnitOfWorkFactory(engine, clock=clock),
    )
    app = create_app(hub, WebSettings(api_keys=KEYS, max_body_bytes=64 * 1024))
    # in the test's own event loop (the engine's connections belong to it), not a portal's
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield Harness(
            hub=hub,
            db=FakeDatabase(),
            clock=clock,
            queue=queue,
            client=cast(AsyncTestClient[Any], client),
            app=app,
        )


@pytest.mark.parametrize("key", ["tpl", "idle-only"])
async def test_every_route_refuses_or_filters_what_lies_outside_the_limit(
    harness: Harness, key: str
) -> None:
    hidden = await build_account(harness.client, harness.hub, unit.HIDDEN_ACCOUNT, invoices=True)
    own = await build_account(harness.client, harness.hub, unit.OWN_ACCOUNT, invoices=False)
    sees_own = key == "tpl"

    async def queued() -> Any:
        return (list(harness.queue.commands), list(harness.queue.messages))

    routes = await probe(
        harness.app,
        harness.client,
        key=key,
        hidden=[hidden] if sees_own else [hidden, own],
        visible=[own] if sees_own else [],
        extra_state=queued,
    )
    assert len(routes) >= 20


async def test_orders_pages_stay_full_and_the_cursor_right(harness: Harness) -> None:
    await unit.test_orders_pages_stay_full_and_the_cursor_right(harness)


async def test_the_feed_of_a_limited_key_is_its_own_events_gapless(harness: Harness) -> None:
    await unit.test_the_feed_of_a_limited_key_is_its_own_events_gapless(harness)


async def test_events_of_no_order_are_read_by_unlimited_keys_only(harness: Harness) -> None:
    await unit.test_events_of_no_order_are_read_by_unlimited_keys_only(harness)


async def test_migration_0006_gives_feed_events_their_orders_account(
    empty_database_url: str,
) -> None:
    await migrate(empty_database_url, revision="0005")
    engine = create_engine(empty_database_url)
    try:
        async with engine.begin() as connection:
            tables = sa.MetaData()
            await connection.run_sync(tables.reflect)
            rows = [
                {**order_row(f"O-{n}", f"CO-{n}", 0), "account": account, "last_seq": n}
                for n, account in ((1, "shop-de"), (2, "shop-fr"))
            ]
            await connection.execute(
                tables.tables["orders"].insert(),
                [{**row, "needs_attention": False} for row in rows],
            )
            await connection.execute(
                tables.tables["feed_events"].insert(),
                [
                    {
                        "seq": seq,
                        "type": "order.created" if order_id else "system.note",
                        "order_id": order_id,
                        "channel": "testchannel" if order_id else None,
                        "occurred_at": T0,
                        "data": {},
                    }
                    for seq, order_id in ((1, "O-1"), (2, "O-2"), (3, None), (4, "O-1"))
                ],
            )
            await connection.execute(tables.tables["feed_counter"].update().values(last_seq=4))
    finally:
        await engine.dispose()

    await migrate(empty_database_url)

    engine = create_engine(empty_database_url)
    try:
        uow = SqlUnitOfWorkFactory(engine, clock=FixedClock(T0))
        async with uow() as work:
            everything = await work.feed.read(after=0, limit=10)
            de = await work.feed.read(
                after=0, limit=10, within=AccountLimit.of(accounts=["testchannel/shop-de"])
            )
            channel = await work.feed.read(
                after=0, limit=10, within=AccountLimit.of(channels=["testchannel"])
            )
            head = await work.feed.head()
    finally:
        await engine.dispose()
    assert [(e.seq, e.account) for e in everything] == [
        (1, "shop-de"),
        (2, "shop-fr"),
        (3, None),
        (4, "shop-de"),
    ]
    assert [e.seq for e in de] == [1, 4]
    assert [e.seq for e in channel] == [1, 2, 4]  # an event of no order: unlimited keys only
    assert head == 4


async def test_events_an_older_process_wrote_without_account_reach_their_accounts_reader(
    database_url: str,
) -> None:
    """During a rolling upgrade past 0006, processes still on the old code write feed events
    with no account: a key limited to the order's account must still read them (its cursor
    moves past what it does not see, so an event missed then would be missed for good)."""
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            tables = sa.MetaData()
            await connection.run_sync(tables.reflect)
            await connection.execute(
                tables.tables["orders"].insert(),
                [
                    {**order_row(f"O-{n}", f"CO-{n}", 0), "account": account, "last_seq": n}
                    | {"needs_attention": False}
                    for n, account in ((1, "shop-de"), (2, "shop-fr"))
                ],
            )
            await connection.execute(
                tables.tables["feed_events"].insert(),
                [
                    {
                        "seq": seq,
                        "type": "order.created",
                        "order_id": order_id,
                        "channel": "testchannel",
                        "account": None,  # the old code's insert names no account
                        "occurred_at": T0,
                        "data": {},
                    }
                    for seq, order_id in ((1, "O-1"), (2, "O-2"), (3, "O-1"))
                ],
            )
            await connection.execute(tables.tables["feed_counter"].update().values(last_seq=3))
        uow = SqlUnitOfWorkFactory(engine, clock=FixedClock(T0))
        async with uow() as work:
            de = await work.feed.read(
                after=0, limit=10, within=AccountLimit.of(accounts=["testchannel/shop-de"])
            )
            fr = await work.feed.read(
                after=0, limit=10, within=AccountLimit.of(accounts=["testchannel/shop-fr"])
            )
    finally:
        await engine.dispose()
    assert [e.seq for e in de] == [1, 3]
    assert [e.seq for e in fr] == [2]
