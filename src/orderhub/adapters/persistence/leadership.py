"""One holder at a time, database-wide: the scheduler's guard against a second copy.

PostgreSQL: a session advisory lock on a connection of its own, in autocommit so no
transaction stays open for hours. The server releases it when that connection ends, so a
crashed holder frees it at once and a standby takes over. The connection never goes back
to the pool (where a lock it still held would outlive the holder): it is closed for good
when the holder lets go.

Holding it once is not holding it forever: the connection can be killed, the server
restarted, the network cut. While the lock is held, a watcher asks on that connection,
every half ``check_seconds``, whether this backend still holds it; each check has half
``check_seconds`` to answer (a server-side statement timeout and a client-side one). When
a check fails, times out or finds the lock gone, the :class:`Term` is lost, at most
``check_seconds`` after the lock was: the holder must stop what the lock guards, and may
stand by again. Every wait is bounded; connection failures while standing by are logged
and retried every ``poll_seconds``.

SQLite: the hub then runs as one process (embedded), there is nothing to guard, and a
term is never lost."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Final, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from orderhub.logging import get_logger

__all__ = [
    "Elect",
    "LossReason",
    "Term",
    "elector",
    "leadership",
    "lock_key",
    "sole_leadership",
]

log = get_logger(__name__)

#: How long opening the lock's connection may take.
CONNECT_TIMEOUT_SECONDS: Final = 10.0
#: How long closing it (and so freeing the lock) may take before it is dropped hard.
CLOSE_TIMEOUT_SECONDS: Final = 5.0

#: Why a term was lost: the check failed (connection killed, server restarted), it did
#: not answer in time, or the connection answers but no longer holds the lock.
LossReason = Literal["error", "timeout", "not_held"]

_TRY_LOCK = sa.text("SELECT pg_try_advisory_lock(:key)")
_UNLOCK = sa.text("SELECT pg_advisory_unlock(:key)")
# A bigint advisory key shows in pg_locks as classid (high 32 bits), objid (low), objsubid 1.
_HOLDS = sa.text(
    "SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory'"
    " AND pid = pg_backend_pid() AND granted AND objsubid = 1"
    " AND classid = :classid AND objid = :objid)"
)


class Term:
    """One uninterrupted stretch of holding the lock.

    ``lost`` is set as soon as the lock may be gone; ``held`` is False from then on, and
    once the holder has let go. ``contested``: another process may have held the lock
    just before (False when this is the only process there is)."""

    def __init__(self, *, contested: bool = True) -> None:
        self.contested = contested
        self.lost = asyncio.Event()
        self.reason: LossReason | None = None
        self.detail = ""
        self._ended = False

    @property
    def held(self) -> bool:
        return not (self._ended or self.lost.is_set())

    def lose(self, reason: LossReason, detail: str = "") -> None:
        """Mark the lock as gone (the first reason sticks)."""
        if self.lost.is_set():
            return
        self.reason, self.detail = reason, detail
        self.lost.set()

    def end(self) -> None:
        """The holder let go."""
        self._ended = True


#: Waits until this process leads (a :class:`Term`), or ``stop`` is set first (None).
Elect = Callable[[asyncio.Event], AbstractAsyncContextManager[Term | None]]


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_try_advisory_lock`` from a readable name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextlib.asynccontextmanager
async def sole_leadership(stop: asyncio.Event) -> AsyncIterator[Term | None]:
    """The one process there is leads, from the start and until it lets go."""
    if stop.is_set():
        yield None
        return
    term = Term(contested=False)
    try:
        yield term
    finally:
        term.end()


def elector(engine: AsyncEngine, name: str, *, check_seconds: float) -> Elect:
    """Elections by the lock ``name``: a standby tries every ``check_seconds``, a leader
    checks its lock as often."""

    def elect(stop: asyncio.Event) -> AbstractAsyncContextManager[Term | None]:
        return leadership(
            engine, name, stop=stop, poll_seconds=check_seconds, check_seconds=check_seconds
        )

    return elect


@contextlib.asynccontextmanager
async def leadership(
    engine: AsyncEngine,
    name: str,
    *,
    stop: asyncio.Event,
    poll_seconds: float = 5.0,
    check_seconds: float = 5.0,
) -> AsyncIterator[Term | None]:
    """Wait until this process holds the lock ``name`` and yield the :class:`Term`, or
    None when ``stop`` is set first. The lock is held until the block ends, unless the
    term is lost before: the block should then end soon, which frees it for good."""
    if engine.dialect.name != "postgresql":
        async with sole_leadership(stop) as sole:
            yield sole
        return
    key = lock_key(name)
    period = check_seconds / 2
    conn = await _acquire(engine, key, stop=stop, poll_seconds=poll_seconds, answer_seconds=period)
    if conn is None:
        yield None
        return
    term = Term()
    watcher = asyncio.create_task(
        _watch(conn, key, term, period), name=f"orderhub-leadership-{name}"
    )
    try:
        yield term
    finally:
        still_held = term.held
        term.end()
        watcher.cancel()
        await asyncio.wait([watcher], timeout=period)
        if still_held:  # free it at once for a standby; closing the connection would too
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.execute(_UNLOCK, {"key": key}), period)
        await _discard(conn)


async def _acquire(
    engine: AsyncEngine,
    key: int,
    *,
    stop: asyncio.Event,
    poll_seconds: float,
    answer_seconds: float,
) -> AsyncConnection | None:
    """A connection that holds the lock, or None once ``stop`` is set."""
    while not stop.is_set():
        conn: AsyncConnection | None = None
        try:
            conn = await asyncio.wait_for(_connect(engine, answer_seconds), CONNECT_TIMEOUT_SECONDS)
            while not stop.is_set():
                locked = await asyncio.wait_for(
                    conn.execute(_TRY_LOCK, {"key": key}), answer_seconds
                )
                if locked.scalar_one():
                    holder, conn = conn, None
                    return holder
                await _wait(stop, poll_seconds)
        except Exception as exc:  # the server is down or restarting, the connection died
            log.warning("leadership.unavailable", error=_describe(exc))
        finally:
            if conn is not None:
                await _discard(conn)
        await _wait(stop, poll_seconds)
    return None


async def _connect(engine: AsyncEngine, answer_seconds: float) -> AsyncConnection:
    """A connection of its own, in autocommit, where no statement runs longer than
    ``answer_seconds``."""
    conn = engine.connect()
    await conn.start()
    try:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        milliseconds = max(1, int(answer_seconds * 1000))
        await conn.execute(sa.text(f"SET statement_timeout = {milliseconds}"))
    except BaseException:
        await _discard(conn)
        raise
    return conn


async def _watch(conn: AsyncConnection, key: int, term: Term, period: float) -> None:
    """Check every ``period`` that the lock is still held, each check bounded by
    ``period``; lose the term on the first check that does not say so."""
    loop = asyncio.get_running_loop()
    params = {"classid": (key >> 32) & 0xFFFFFFFF, "objid": key & 0xFFFFFFFF}
    next_check = loop.time() + period
    while True:
        await asyncio.sleep(max(0.0, next_check - loop.time()))
        next_check = loop.time() + period
        try:
            holds = await asyncio.wait_for(conn.execute(_HOLDS, params), period)
        except TimeoutError:
            term.lose("timeout", f"no answer within {period:g}s")
            return
        except Exception as exc:
            term.lose("error", _describe(exc))
            return
        if not holds.scalar_one():
            term.lose("not_held", "the connection no longer holds the lock")
            return


async def _discard(conn: AsyncConnection) -> None:
    """Close the connection for good: never back to the pool, with or without the lock."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(conn.invalidate(), CLOSE_TIMEOUT_SECONDS)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(conn.close(), CLOSE_TIMEOUT_SECONDS)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def _describe(exc: BaseException) -> str:
    first_line = next(iter(str(exc).splitlines()), "")
    return f"{type(exc).__name__}: {first_line}" if first_line else type(exc).__name__
