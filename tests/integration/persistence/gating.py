"""A unit of work that stops between numbering its events and the moment its commit is
visible, to force the interleavings of concurrent commits the feed must survive.

On PostgreSQL the events are numbered inside COMMIT, by the deferred trigger of
``feed_pending`` (migration 0009). To stop COMMIT right there, the test database gets a
second deferred trigger, on ``test_hold.commit``: the unit of work inserts a row there
after its events, so at COMMIT its trigger fires after the numbering, and waits for an
advisory lock the test holds. The counter is then held exactly as COMMIT holds it (the
transaction not yet visible), for as long as the test likes."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Awaitable, Callable
from typing import Final
from weakref import WeakSet

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from orderhub.adapters.persistence import SqlUnitOfWork

HOLD_SECONDS: Final = 30.0  # only reached when something is wrong
_INSTALL: Final = (  # a schema of its own: the hub's schema stays what the migrations make
    "CREATE SCHEMA IF NOT EXISTS test_hold",
    "CREATE TABLE IF NOT EXISTS test_hold.commit (k bigint NOT NULL)",
    """CREATE OR REPLACE FUNCTION test_hold.hold() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_advisory_xact_lock(NEW.k);
        DELETE FROM test_hold.commit WHERE k = NEW.k;
        RETURN NULL;
    END $$""",
    "DROP TRIGGER IF EXISTS hold ON test_hold.commit",
    """CREATE CONSTRAINT TRIGGER hold AFTER INSERT ON test_hold.commit
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_hold.hold()""",
)
_installed: WeakSet[Engine] = WeakSet()
_INSTALL_LOCK: Final = 7_000_000  # concurrent installers take turns on it
_keys = itertools.count(7_000_001)


async def _install(engine: AsyncEngine) -> None:
    if engine.sync_engine in _installed:
        return
    async with engine.begin() as connection:
        await connection.execute(sa.text(f"SELECT pg_advisory_xact_lock({_INSTALL_LOCK})"))
        for statement in _INSTALL:
            await connection.execute(sa.text(statement))
    _installed.add(engine.sync_engine)


async def _until_waiting_for_the_hold(watcher: AsyncConnection, pid: int) -> None:
    query = sa.text("SELECT wait_event FROM pg_stat_activity WHERE pid = :pid")
    async with asyncio.timeout(HOLD_SECONDS):
        while (await watcher.execute(query, {"pid": pid})).scalar_one_or_none() != "advisory":
            await watcher.rollback()  # the activity view is read once per transaction
            await asyncio.sleep(0.005)
        await watcher.rollback()


class HoldsTheCounter(SqlUnitOfWork):
    """Numbers its events (the feed counter locked from then on), then waits for ``gate``
    before its commit becomes visible; ``numbered`` is set once it holds the counter.

    PostgreSQL: held inside COMMIT, after the numbering trigger ran. If ``gate`` raises,
    the session is terminated there (the process died in COMMIT) and the gate's error is
    raised from :meth:`commit`; a COMMIT that fails by itself raises its own error.
    SQLite: held right before COMMIT, the counter statement run."""

    def __init__(self, engine: AsyncEngine, gate: Callable[[], Awaitable[object]]) -> None:
        super().__init__(engine)
        self.gate = gate
        self.numbered = asyncio.Event()
        self._engine_for_hold = engine
        self._hold: asyncio.Task[None] | None = None
        self._gate_raised = False

    async def commit(self) -> None:
        try:
            await super().commit()
        except BaseException:
            hold, self._hold = self._hold, None
            if hold is not None and self._gate_raised:
                await hold  # the gate's error: the session was killed for it
            if hold is not None:
                hold.cancel()  # COMMIT failed by itself: its own error, not a timeout
                with contextlib.suppress(BaseException):
                    await hold
            raise
        hold, self._hold = self._hold, None
        if hold is not None:
            await hold

    async def _before_commit(self) -> None:
        connection = self._tx.conn()
        if connection.dialect.name != "postgresql":
            self.numbered.set()
            await self.gate()
            return
        await _install(self._engine_for_hold)
        key = next(_keys)
        holder = await self._engine_for_hold.connect()
        try:
            await holder.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            await holder.commit()
            pid = (await connection.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
            await connection.execute(
                sa.text("INSERT INTO test_hold.commit (k) VALUES (:k)"), {"k": key}
            )
        except BaseException:
            await holder.invalidate()  # its session ends, and its advisory lock with it
            await holder.close()
            raise
        self._hold = asyncio.create_task(self._hold_in_commit(holder, key, pid))

    async def _hold_in_commit(self, holder: AsyncConnection, key: int, pid: int) -> None:
        try:
            await _until_waiting_for_the_hold(holder, pid)  # numbered, not yet visible
            self.numbered.set()
            try:
                await self.gate()
            except BaseException:
                self._gate_raised = True
                kill = sa.text("SELECT pg_terminate_backend(:pid, 5000)")  # waits for the exit
                await holder.execute(kill, {"pid": pid})
                raise
        finally:
            try:
                await holder.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                await holder.commit()
            except BaseException:
                await holder.invalidate()  # the session ends: the lock cannot outlive it
                raise
            finally:
                await holder.close()
