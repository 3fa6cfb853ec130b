"""SQLite: writing transactions of one process take turns on an asyncio lock (engine.py).

The turn is taken right before ``BEGIN IMMEDIATE`` and given back once COMMIT or
ROLLBACK has returned, or when the connection goes back to the pool, so it is held
exactly while SQLite's write lock is. A turn that leaked would make the next writer wait
for SQLite's busy timeout (30 s): every wait here is bounded well below it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Final

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from orderhub.adapters.persistence import SqlUnitOfWorkFactory, create_engine
from orderhub.adapters.persistence.engine import SQLITE_BUSY_TIMEOUT_MS

BOUND: Final = SQLITE_BUSY_TIMEOUT_MS / 1000 / 3  # a leaked turn would take the whole timeout


@pytest.fixture
async def sqlite_engine(sqlite_url: str) -> AsyncEngine:
    engine = create_engine(sqlite_url)
    yield engine  # type: ignore[misc]
    await engine.dispose()


async def _write(factory: SqlUnitOfWorkFactory, label: str) -> None:
    async with factory() as uow:
        uow.record("command.succeeded", order=None, data={"label": label})
        await uow.commit()


async def _fail_inside(factory: SqlUnitOfWorkFactory) -> None:
    async with factory() as uow:
        await uow.inbox.id_for("nothing")
        raise RuntimeError("boom")


async def test_concurrent_writers_all_commit_in_turn(sqlite_engine: AsyncEngine) -> None:
    factory = SqlUnitOfWorkFactory(sqlite_engine)
    async with asyncio.timeout(BOUND):
        await asyncio.gather(*(_write(factory, f"w{i}") for i in range(40)))
    async with factory() as uow:
        seqs = [e.seq for e in await uow.feed.read(after=0, limit=100)]
    assert seqs == list(range(1, 41))


async def test_the_turn_comes_back_after_a_rollback_an_error_and_a_close(
    sqlite_engine: AsyncEngine,
) -> None:
    factory = SqlUnitOfWorkFactory(sqlite_engine)
    async with asyncio.timeout(BOUND):
        async with factory() as uow:  # rolled back explicitly
            await uow.inbox.id_for("nothing")
            await uow.rollback()
        with pytest.raises(RuntimeError):
            await _fail_inside(factory)  # rolled back on the way out
        async with sqlite_engine.connect() as connection:  # closed mid-transaction
            await connection.execute(sa.text("SELECT 1"))
        await _write(factory, "after")  # would wait out the busy timeout on a leaked turn


async def test_a_unit_that_has_not_begun_does_not_hold_up_another_in_its_task(
    sqlite_engine: AsyncEngine, tmp_path: Path
) -> None:
    """The turn follows the transaction, not the ``async with``: a unit opened first but
    not yet writing lets a second one of the same task write and commit."""
    factory = SqlUnitOfWorkFactory(sqlite_engine)
    async with asyncio.timeout(BOUND):
        async with factory() as outer:
            outer.record("command.succeeded", order=None, data={"label": "outer"})
            await _write(factory, "inner")
            await outer.commit()
    async with factory() as uow:
        labels = [e.data["label"] for e in await uow.feed.read(after=0, limit=10)]
    assert labels == ["inner", "outer"]


async def test_the_next_writer_begins_only_once_the_commit_has_returned(sqlite_url: str) -> None:
    """The turn is given back after COMMIT has returned, its sync done, not when SQLAlchemy
    announces the commit (before it runs): with SQLite's busy timeout at 0, a writer whose
    BEGIN IMMEDIATE met another's COMMIT still under way would fail at once."""
    engine = create_engine(sqlite_url)

    @sa.event.listens_for(engine.sync_engine, "connect")
    def _no_busy_wait(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 0")
        cursor.close()

    factory = SqlUnitOfWorkFactory(engine)
    try:
        async with asyncio.timeout(BOUND):
            await asyncio.gather(*(_write(factory, f"w{i}") for i in range(60)))
        async with factory() as uow:
            seqs = [e.seq for e in await uow.feed.read(after=0, limit=100)]
    finally:
        await engine.dispose()
    assert seqs == list(range(1, 61))
