"""SQLite's statements in one hop each to aiosqlite's thread (``sqlite_driver.py``).

Each call to aiosqlite's thread is a hand-over from the event loop and back, and embedded
mode runs intake, processing and the scheduler on one loop. SQLAlchemy's own adapter made
four per statement (cursor, execute, fetchall, close); these tests count the calls, so a
change that brings the extra hops back fails here whatever the machine's speed, and check
that what a statement reports (rows, row count, last row id, errors) is what sqlite3
reports."""

from __future__ import annotations

import asyncio
import sqlite3
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
from orderhub.adapters.persistence import engine as engine_module
from orderhub.adapters.persistence.engine import create_engine
from orderhub.adapters.persistence.sqlite_driver import OneHopCursor

QUEUED_WITHIN = 30.0  # a bound on a wait, not a measurement
TABLE = sa.table("t", sa.column("id", sa.Integer), sa.column("name", sa.Text))


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """This module is SQLite's alone: the shared ``engine`` fixture is on SQLite here."""
    return sqlite_url


@pytest.fixture
async def scratch(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection inside a transaction, on a table of its own."""
    async with engine.connect() as connection:
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


async def test_the_engine_makes_one_hop_cursors(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
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


def _write_locked(engine: AsyncEngine) -> bool:
    """Whether another connection to the file is refused SQLite's write lock right now."""
    other = sqlite3.connect(str(engine.url.database), timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if "locked" not in str(exc):
            raise
        return True
    else:
        other.execute("ROLLBACK")
        return False
    finally:
        other.close()


async def test_a_unit_of_work_is_a_call_per_statement_and_one_to_end(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``BEGIN IMMEDIATE`` goes in the first statement's call, and takes SQLite's write
    lock there; the pool's rollback after a COMMIT is skipped."""
    factory = SqlUnitOfWorkFactory(engine)
    statements: list[str] = []
    sa.event.listen(
        engine.sync_engine,
        "before_cursor_execute",
        lambda *args: statements.append(args[2].split()[0].upper()),
    )
    async with engine.connect():  # the pool's first connection, set up
        pass
    with hops(monkeypatch) as calls:
        async with factory() as uow:
            assert not _write_locked(engine)
            assert await uow.inbox.add(inbox_message("wh-1"))
            assert _write_locked(engine)  # BEGIN IMMEDIATE went with the insert
            await uow.commit()
    assert not _write_locked(engine)
    assert statements == ["INSERT"]
    assert calls == ["_run", "commit"]

    with hops(monkeypatch) as calls:
        async with factory() as uow:  # left without a commit
            assert not await uow.inbox.add(inbox_message("wh-1"))  # a duplicate
    assert calls == ["_run", "rollback"]
    assert not _write_locked(engine)


async def test_a_unit_of_work_that_sends_nothing_calls_nothing(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Begun and committed with no statement: no call to the thread at all, and the
    writers' turn taken at its begin is given back (another task's unit goes on)."""
    factory = SqlUnitOfWorkFactory(engine)
    async with engine.connect():
        pass
    with hops(monkeypatch) as calls:
        async with factory() as uow:
            await uow._tx.conn().begin()
            await uow.commit()
    assert calls == []

    async def another() -> None:
        async with factory() as uow:
            assert await uow.inbox.add(inbox_message("wh-2"))
            await uow.commit()

    await asyncio.wait_for(asyncio.ensure_future(another()), QUEUED_WITHIN)


async def test_a_statement_cancelled_in_flight_leaves_nothing_behind(
    engine: AsyncEngine,
) -> None:
    """The caller gives up while its insert waits on aiosqlite's thread; the insert still
    runs there later, inside the unit's transaction. That transaction must never be left
    open for the next unit of work, nor committed: SQLAlchemy drops a connection whose
    statement was cancelled, and the close is queued behind the insert."""
    factory = SqlUnitOfWorkFactory(engine)
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


async def test_a_stream_first_in_a_transaction_is_inside_it(engine: AsyncEngine) -> None:
    """A server-side cursor is SQLAlchemy's own: the BEGIN still to be sent goes first."""
    async with engine.connect() as connection:
        await connection.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
        await connection.commit()  # settled: the next BEGIN would wait for a statement
        streamed = await connection.stream(
            sa.text("INSERT INTO t (name) VALUES ('s') RETURNING id")
        )
        assert [row.id async for row in streamed] == [1]
        assert _write_locked(engine)  # inside BEGIN IMMEDIATE
        await connection.rollback()
        assert (
            await connection.execute(sa.select(sa.func.count()).select_from(TABLE))
        ).scalar() == 0


async def test_rows_fetched_a_few_at_a_time(scratch: AsyncConnection) -> None:
    await scratch.execute(sa.insert(TABLE), [{"name": f"n{i}"} for i in range(3)])
    result = await scratch.execute(sa.select(TABLE.c.name).order_by(TABLE.c.id))
    assert result.fetchmany() == [("n0",)]  # the DBAPI's default size, 1
    assert result.fetchmany(5) == [("n1",), ("n2",)]


async def test_a_refused_begin_is_sent_again_never_skipped(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process holds SQLite's write lock: the BEGIN sent with the unit's first
    statement fails (after the busy timeout) and so does the statement. The unit's next
    statement sends BEGIN again: it never runs outside a transaction, where it would be
    committed at once and survive the unit's rollback."""
    monkeypatch.setattr(engine_module, "SQLITE_BUSY_TIMEOUT_MS", 50)
    engine = create_engine(sqlite_url)
    try:
        async with engine.connect():
            pass
        other = sqlite3.connect(str(engine.url.database), isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        factory = SqlUnitOfWorkFactory(engine)
        async with factory() as uow:
            with pytest.raises(sa.exc.OperationalError, match="locked"):
                await uow.inbox.add(inbox_message("wh-1"))
            other.execute("ROLLBACK")
            assert await uow.inbox.add(inbox_message("wh-2"))
            assert _write_locked(engine)  # in a transaction of its own again
        other.close()
        async with factory(read_only=True) as uow:
            assert await uow.inbox.id_for("wh-2") is None  # rolled back with the unit
    finally:
        await engine.dispose()
