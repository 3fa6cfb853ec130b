"""Migration 0003 on orders stored at revision 0002: ``fulfilled_by`` is read off each
stored document (leaf lines only, bundles left out), and the orders list filters by it."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from tests.integration.persistence.test_sql_migration_0002 import T0, order_row

from orderhub.adapters.persistence import SqlUnitOfWorkFactory, create_engine, migrate
from orderhub.adapters.persistence.migrate import current_revision, head_revision
from orderhub.application.ports import OrderFilter
from orderhub.domain.values import OrderFulfilledBy
from orderhub.testing.fakes import FixedClock


def with_fulfilments(row: dict[str, Any], kinds: list[str]) -> dict[str, Any]:
    """The 0001/0002 order row with one line per fulfilment kind (and a bundle parent of
    the first line that belongs to no fulfilment, to show bundles do not count)."""
    document = row["document"]
    template = document["lines"][0]
    document["fulfilments"] = [
        {**document["fulfilments"][0], "id": f"F-{n}", "fulfilled_by": kind}
        for n, kind in enumerate(kinds)
    ]
    document["lines"] = [
        {**template, "id": f"{row['id']}-B", "channel_line_id": "B", "fulfilment_id": None},
        *(
            {
                **template,
                "id": f"{row['id']}-L{n}",
                "channel_line_id": f"L{n}",
                "fulfilment_id": f"F-{n}",
                "parent_line_id": f"{row['id']}-B",
            }
            for n in range(len(kinds))
        ),
    ]
    document["v"] = 2
    return {**row, "needs_attention": False, "last_seq": n_seq(row["id"])}


def n_seq(order_id: str) -> int:
    return int(order_id.split("-")[1])


async def test_fulfilled_by_is_read_off_the_stored_orders(empty_database_url: str) -> None:
    await migrate(empty_database_url, revision="0002")
    engine = create_engine(empty_database_url)
    try:
        async with engine.begin() as connection:
            tables = sa.MetaData()
            await connection.run_sync(tables.reflect)
            await connection.execute(
                tables.tables["orders"].insert(),
                [
                    with_fulfilments(order_row("O-1", "CO-1", 1), ["seller"]),
                    with_fulfilments(order_row("O-2", "CO-2", 1), ["channel", "channel"]),
                    with_fulfilments(order_row("O-3", "CO-3", 1), ["seller", "channel"]),
                ],
            )
    finally:
        await engine.dispose()

    await migrate(empty_database_url)
    assert await current_revision(empty_database_url) == head_revision()

    engine = create_engine(empty_database_url)
    try:
        uow = SqlUnitOfWorkFactory(engine, clock=FixedClock(T0))
        async with uow() as work:
            shown = {
                kind: [
                    o.id
                    for o in await work.orders.list(
                        OrderFilter(fulfilled_by=kind), after_seq=None, limit=10
                    )
                ]
                for kind in OrderFulfilledBy
            }
            loaded = {
                o.id: o.fulfilled_by
                for o in await work.orders.list(OrderFilter(), after_seq=None, limit=10)
            }
    finally:
        await engine.dispose()
    assert shown == {
        OrderFulfilledBy.SELLER: ["O-1"],
        OrderFulfilledBy.CHANNEL: ["O-2"],
        OrderFulfilledBy.MIXED: ["O-3"],
    }
    # the column agrees with what the loaded order says
    assert loaded == {
        "O-1": OrderFulfilledBy.SELLER,
        "O-2": OrderFulfilledBy.CHANNEL,
        "O-3": OrderFulfilledBy.MIXED,
    }
