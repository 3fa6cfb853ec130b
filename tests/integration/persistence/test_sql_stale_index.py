"""The refresh job's query (the orders heard of least recently) can be answered from
``ix_orders_last_heard_id`` instead of reading and sorting every stored order."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine

from orderhub.adapters.persistence import create_engine
from orderhub.adapters.persistence.tables import last_heard, orders
from orderhub.domain.values import TERMINAL_STATUSES

pytestmark = pytest.mark.postgres


async def test_the_stale_orders_query_uses_its_index(postgres_url: str) -> None:
    engine: AsyncEngine = create_engine(postgres_url)
    o = orders.c
    query = (
        sa.select(orders)
        .where(
            o.status.not_in(sorted(s.value for s in TERMINAL_STATUSES)),
            last_heard < datetime(2026, 11, 30, tzinfo=UTC),
        )
        .order_by(last_heard, o.id)
        .limit(50)
    )
    sql = str(query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    try:
        async with engine.connect() as connection:
            await connection.exec_driver_sql("SET enable_seqscan = off")  # tiny table
            await connection.exec_driver_sql("SET enable_sort = off")
            plan = (await connection.exec_driver_sql(f"EXPLAIN {sql}")).scalars().all()
    finally:
        await engine.dispose()
    text = "\n".join(plan)
    assert "ix_orders_last_heard_id" in text, text
    assert "Seq Scan" not in text, text
