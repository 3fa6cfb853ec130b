"""One holder at a time, database-wide: the scheduler's guard against a second copy.

PostgreSQL: a session advisory lock on a connection of its own, in autocommit so no
transaction stays open for hours. The server releases it when that connection ends, so a
crashed holder frees it at once and a standby takes over. SQLite: the hub then runs as
one process (embedded), and there is nothing to guard."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_try_advisory_lock`` from a readable name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextlib.asynccontextmanager
async def leadership(
    engine: AsyncEngine, name: str, *, stop: asyncio.Event, poll_seconds: float = 5.0
) -> AsyncIterator[bool]:
    """Wait until this process holds the lock ``name`` (True), or ``stop`` is set first
    (False). The lock is held until the block ends."""
    if engine.dialect.name != "postgresql":
        yield not stop.is_set()
        return
    key = lock_key(name)
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        held = False
        while not stop.is_set():
            held = bool(
                (
                    await conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key})
                ).scalar_one()
            )
            if held:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), poll_seconds)
        try:
            yield held
        finally:
            if held:
                await conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
