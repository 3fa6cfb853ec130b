"""The database-backed :class:`~orderhub.channels.budget.RateBudget`: one row per budget.

A spend is one short transaction of its own (never inside a unit of work: it comes before
a channel call, which no transaction may span). The row is locked first (PostgreSQL: the
upsert then ``SELECT ... FOR UPDATE``; SQLite: every transaction begins IMMEDIATE), so two
processes spending at once queue up and the count never goes over the limit. The row
keeps the times of the spends still inside the window (at most ``limit`` of them), as
seconds since the epoch by the database's clock on PostgreSQL (one clock for every
process; on SQLite, whose processes share a host, the host's); a time later than now
(a clock set back) counts as now. Waiting for the row is bounded (``lock_timeout``,
``statement_timeout``): a holder that froze mid-transaction makes a spend fail, not hang.
"""

from __future__ import annotations

import time
from typing import Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from orderhub.adapters.persistence.tables import rate_budgets
from orderhub.channels.spi import Clock

KEY_MAX: Final = 200
WAIT_MS: Final = 2000  # the longest a spend waits for the row or a statement


class SqlRateBudget:
    def __init__(self, engine: AsyncEngine, clock: Clock | None = None) -> None:
        """``clock``: tests' own; by default the database's (PostgreSQL) or the host's."""
        self._engine = engine
        self._clock = clock

    async def spend(self, key: str, *, limit: int, window_seconds: float) -> float | None:
        if limit < 1 or window_seconds <= 0:
            raise ValueError("a rate budget needs a limit of at least 1 and a positive window")
        if not key or len(key) > KEY_MAX:
            raise ValueError(f"a rate budget's key is 1 to {KEY_MAX} characters")
        dialect = self._engine.dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        postgres = dialect == "postgresql"
        async with self._engine.begin() as conn:
            if postgres:
                await conn.exec_driver_sql(f"SET LOCAL lock_timeout = {WAIT_MS}")
                await conn.exec_driver_sql(f"SET LOCAL statement_timeout = {WAIT_MS}")
            await conn.execute(
                insert(rate_budgets).values(key=key, spent=[]).on_conflict_do_nothing()
            )
            row = await conn.execute(
                sa.select(rate_budgets.c.spent).where(rate_budgets.c.key == key).with_for_update()
            )
            stored = row.scalar_one() or []
            if self._clock is not None:
                now = self._clock.now().timestamp()
            elif postgres:
                now = float(
                    (
                        await conn.execute(
                            sa.select(sa.extract("epoch", sa.func.clock_timestamp()))
                        )
                    ).scalar_one()
                )
            else:
                now = time.time()
            spent = sorted(min(float(t), now) for t in stored)
            spent = [t for t in spent if t > now - window_seconds]
            if len(spent) >= limit:
                wait = spent[len(spent) - limit] + window_seconds - now
                result: float | None = max(wait, 0.0)
            else:
                spent.append(now)
                result = None
            await conn.execute(
                sa.update(rate_budgets).where(rate_budgets.c.key == key).values(spent=spent)
            )
            return result
