"""SQLite's statements in one hop each to aiosqlite's thread (``sqlite_driver.py``).

Each call to aiosqlite's thread is a hand-over from the event loop and back, and embedded
mode runs intake, processing and the scheduler on one loop. SQLAlchemy's own adapter made
four per statement (cursor, execute, fetchall, close); these tests count the calls, so a
change that brings the extra hops back fails here whatever the machine's speed, and check
that what a statement reports (rows, row count, last row id, errors) is what sqlite3
reports."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import aiosqlite
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from tests.integration.persistence.conftest import inbox_message

from orderhub.adapters.persistence import SqlUnitOfWorkFactory
from orderhub.adapters.persistence.engine import create_engine
from orderhub.adapters.persistence.sqlite_driver import OneHopCursor

QUEUED_WITHIN = 30.0  # a bound on a wait, not a measurement
TABLE = sa.table("t", sa.column("id", sa.Integer), sa.column("name", sa.Text))


@pytest.fixture
async def sqlite_engine(sqlite_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(sqlite_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def scratch(sqlite_engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection inside a transaction, on a table of its own."""
    async with sqlite_engine.connect() as connection:
        await connection.exec_driver_sql(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)"
        )
        await connection.commit()
        await connection.exec_driver_sql("SELECT 1")  # BEGIN now, not in a count below
        yield connection


@contextmanager
def hops(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every call queued to aiosqlite's thread while the block runs (the function's name)."""
    calls: list[str] = []
    original = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(getattr(fn, "__name__", repr(fn)))
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    yield calls
    monkeypatch.undo()


async def _queued(driver: aiosqlite.Connection) -> None:
    """Until a call waits in the thread's queue (the gate's own call has been taken)."""
    while driver._tx.qsize() < 1:  # noqa: ASYNC110 (a thread's queue: no event to await)
        await asyncio.sleep(0.001)


async def test_the_engine_makes_one_hop_cursors(sqlite_engine: AsyncEngine) -> None:
    async with sqlite_engine.connect() as connection:
        raw = await connection.get_raw_connection()
        assert isinstance(raw.dbapi_connection.cursor(), OneHopCursor)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "statement",
    [
        sa.select(TABLE.c.id, TABLE.c.name),
        sa.insert(TABLE).values(name="a").returning(TABLE.c.id),
        sa.update(TABLE).values(name="b"),
        sa.delete(TABLE),
    ],
    ids=["select", "insert-returning", "update", "delete"],
)
async def test_a_statement_is_one_call_on_aiosqlites_thread(
    scratch: AsyncConnection, monkeypatch: pytest.MonkeyPatch, statement: Any
) -> None:
    with hops(monkeypatch) as calls:
        result = await scratch.execute(statement)
        result.all() if result.returns_rows else None
    assert len(calls) == 1, calls


async def test_a_unit_of_work_is_a_call_per_statement_and_its_ends(
    sqlite_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    factory = SqlUnitOfWorkFactory(sqlite_engine)
    statements: list[str] = []
    sa.event.listen(
        sqlite_engine.sync_engine,
        "before_cursor_execute",
        lambda *args: statements.append(args[2].split()[0].upper()),
    )
    async with sqlite_engine.connect():  # the pool's first connection, set up
        pass
    with hops(monkeypatch) as calls:
        async with factory() as uow:
            assert await uow.inbox.add(inbox_message("wh-1"))
            await uow.commit()
    assert statements == ["BEGIN", "INSERT"]  # BEGIN IMMEDIATE, the insert
    # then sqlite3's commit(); the pool's rollback as the connection goes back is skipped,
    # as nothing was queued since the COMMIT returned
    assert calls == ["_run", "_run", "commit"]

    with hops(monkeypatch) as calls:
        async with factory() as uow:  # left without a commit
            assert not await uow.inbox.add(inbox_message("wh-1"))  # a duplicate
    assert calls == ["_run", "_run", "rollback"]


async def test_a_statement_cancelled_in_flight_leaves_nothing_behind(
    sqlite_engine: AsyncEngine,
) -> None:
    """The caller gives up while its insert waits on aiosqlite's thread; the insert still
    runs there later, inside the unit's transaction. That transaction must never be left
    open for the next unit of work, nor committed: SQLAlchemy drops a connection whose
    statement was cancelled, and the close is queued behind the insert."""
    factory = SqlUnitOfWorkFactory(sqlite_engine)
    gate = threading.Event()
    async with factory() as uow:
        raw = await uow._tx.conn().get_raw_connection()
        driver = raw.driver_connection
        assert isinstance(driver, aiosqlite.Connection)
        assert await uow.inbox.id_for("wh-0") is None  # BEGIN IMMEDIATE sent
        held = asyncio.ensure_future(driver._execute(gate.wait))  # the thread, held
        adding = asyncio.ensure_future(uow.inbox.add(inbox_message("wh-1")))
        await asyncio.wait_for(_queued(driver), QUEUED_WITHIN)  # behind the gate
        adding.cancel()
        gate.set()
        await held
        with pytest.raises(asyncio.CancelledError):
            await adding
    async with factory(read_only=True) as uow:
        assert await uow.inbox.id_for("wh-1") is None  # the insert was not kept
    async with factory() as uow:
        assert await uow.inbox.add(inbox_message("wh-1"))
        await uow.commit()
    async with factory(read_only=True) as uow:
        assert await uow.inbox.id_for("wh-1") is not None


async def test_what_a_statement_reports_is_sqlite3s(scratch: AsyncConnection) -> None:
    inserted = await scratch.execute(sa.insert(TABLE).values(name="a"))
    assert inserted.rowcount == 1
    assert inserted.lastrowid == 1
    many = await scratch.execute(sa.insert(TABLE), [{"name": "b"}, {"name": "c"}])
    assert many.rowcount == 2

    rows = await scratch.execute(sa.select(TABLE.c.id, TABLE.c.name).order_by(TABLE.c.id))
    assert list(rows.keys()) == ["id", "name"]
    assert [tuple(r) for r in rows] == [(1, "a"), (2, "b"), (3, "c")]

    suffixed = sa.update(TABLE).where(TABLE.c.id > 1).values(name=TABLE.c.name + "!")
    assert (await scratch.execute(suffixed)).rowcount == 2
    none = sa.update(TABLE).where(TABLE.c.id > 9).values(name="x")
    assert (await scratch.execute(none)).rowcount == 0

    again = await scratch.execute(
        sa.text("INSERT INTO t (name) VALUES ('a') ON CONFLICT (name) DO NOTHING RETURNING id")
    )
    assert again.all() == []
    fresh = await scratch.execute(
        sa.text("INSERT INTO t (name) VALUES ('d') ON CONFLICT (name) DO NOTHING RETURNING id")
    )
    assert fresh.scalar_one() == 4
    empty = await scratch.execute(sa.select(TABLE.c.id).where(TABLE.c.id > 9))
    assert empty.all() == []


async def test_a_refused_statement_raises_and_the_connection_goes_on(
    scratch: AsyncConnection,
) -> None:
    await scratch.execute(sa.insert(TABLE).values(name="a"))
    with pytest.raises(sa.exc.IntegrityError, match="UNIQUE"):
        await scratch.execute(sa.insert(TABLE).values(name="a"))
    with pytest.raises(sa.exc.OperationalError, match="no such table"):
        await scratch.exec_driver_sql("SELECT * FROM nowhere")
    await scratch.rollback()
    assert (await scratch.execute(sa.select(sa.func.count()).select_from(TABLE))).scalar() == 0
    await scratch.execute(sa.insert(TABLE).values(name="a"))
    await scratch.commit()
    assert (await scratch.execute(sa.select(TABLE.c.name))).scalars().all() == ["a"]


async def test_a_server_side_cursor_streams_as_before(scratch: AsyncConnection) -> None:
    await scratch.execute(sa.insert(TABLE), [{"name": f"n{i}"} for i in range(50)])
    streamed = await scratch.stream(sa.select(TABLE.c.name).order_by(TABLE.c.id))
    names = [row.name async for row in streamed]
    assert names == [f"n{i}" for i in range(50)]
