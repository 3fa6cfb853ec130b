"""A unit of work that stops between numbering its events and COMMIT, to force the
interleavings of concurrent commits the feed must survive."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from orderhub.adapters.persistence import SqlUnitOfWork
from orderhub.adapters.persistence.feed import NUMBER_NOW


class HoldsTheCounter(SqlUnitOfWork):
    """Numbers its events (the feed counter locked from then on), then waits for ``gate``
    before COMMIT. On PostgreSQL, where COMMIT itself numbers them, it numbers them early
    (``SET CONSTRAINTS ... IMMEDIATE``): the lock is then held exactly as COMMIT holds it,
    only for as long as the test likes. ``numbered`` is set once it holds the counter."""

    def __init__(self, engine: AsyncEngine, gate: Callable[[], Awaitable[object]]) -> None:
        super().__init__(engine)
        self.gate = gate
        self.numbered = asyncio.Event()

    async def _before_commit(self) -> None:
        connection = self._tx.conn()
        if connection.dialect.name == "postgresql":
            await connection.execute(NUMBER_NOW)
        self.numbered.set()
        await self.gate()
