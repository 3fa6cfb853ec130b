"""Engines for PostgreSQL (asyncpg) and SQLite (aiosqlite), and the readiness probe.

SQLite is set up for several async writers sharing one file:

* WAL, so readers never block the writer and the writer never blocks readers;
* ``busy_timeout``, so a connection that finds the database locked waits (in aiosqlite's
  thread, not on the event loop) instead of failing with "database is locked";
* every transaction starts with ``BEGIN IMMEDIATE``. A deferred transaction that reads
  first and writes later cannot be upgraded to a writer once another connection has
  committed since its read: SQLite then fails at once with SQLITE_BUSY, whatever the
  busy timeout. Taking the write lock at ``BEGIN`` makes units of work queue up on the
  busy timeout instead. This serialises units of work on SQLite, which is the price of a
  one-file database: SQLite is the embedded/dev backend, PostgreSQL the production one.
  A consequence worth knowing: a task must not open a second unit of work while its
  first is still open (it would wait for itself until the busy timeout);
* foreign keys on (SQLite leaves them off by default);
* within one process, writing transactions also queue on an asyncio lock per engine
  and event loop (:class:`_WriterTurns`), taken right before their ``BEGIN IMMEDIATE``
  and given back at their COMMIT or ROLLBACK, exactly while SQLite's own write lock is
  held. SQLite's busy handler waits by sleeping and trying again (1, 2, 5 ... 100 ms), so
  writers that collide on the file lock wake up late and in no order: the embedded hub's
  p99 latency was seconds under load (issue 10). The asyncio lock hands the turn over at
  once and in order; ``busy_timeout`` still covers other processes on the same file (the
  CLI), a turn not had within it, and a task that begins a second transaction while it
  holds the turn (one of the two fails after the busy timeout: the second, or the first
  if it has sent no statement yet, its ``BEGIN`` going with its first statement,
  ``sqlite_driver.py``).
"""

from __future__ import annotations

import asyncio
import json
import weakref
from dataclasses import dataclass
from typing import Any, Final

import msgspec
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.util import await_only
from sqlalchemy.util.concurrency import in_greenlet

from orderhub.adapters.persistence.sqlite_driver import OneHopConnection, one_hop_dbapi

SQLITE_BUSY_TIMEOUT_MS: Final = 30_000
SQLITE_BEGIN_OPTION: Final = "orderhub_sqlite_begin"
"""Execution option naming the SQLite ``BEGIN`` mode of a connection (default IMMEDIATE)."""
_SQLITE_BEGIN_MODES: Final = frozenset({"DEFERRED", "IMMEDIATE", "EXCLUSIVE"})
_SQLITE_BEGINS: Final = frozenset(f"BEGIN {mode}" for mode in _SQLITE_BEGIN_MODES)
SUPPORTED_DRIVERS: Final = ("postgresql+asyncpg", "sqlite+aiosqlite")


@dataclass(frozen=True, kw_only=True, slots=True)
class PoolOptions:
    """The PostgreSQL connection pool (``[database]`` settings; SQLite ignores them).

    The defaults keep a pool big enough for a process's concurrent units of work, so
    connections are not closed and opened again under load (each new PostgreSQL session
    costs a handshake and type introspection), and no ping at checkout (three round trips
    per unit of work). A connection the server dropped then fails its statement once:
    SQLAlchemy recognises the disconnect, invalidates that connection and every older one
    in the pool, and the request or job fails and is retried (webhooks by their sender,
    jobs by the queue, both by the sweeper). ``recycle_seconds`` replaces connections
    before a firewall or server timeout silently cuts them."""

    size: int = 20
    max_overflow: int = 10
    pre_ping: bool = False
    recycle_seconds: float = 1800.0
    timeout_seconds: float = 30.0
    connect_timeout_seconds: float = 10.0  # asyncpg's default: 60 s


def create_engine(
    url: str, *, echo: bool = False, pool: PoolOptions | None = None, **kwargs: Any
) -> AsyncEngine:
    """An async engine for ``postgresql+asyncpg://`` or ``sqlite+aiosqlite://`` URLs.

    ``postgresql://`` and ``sqlite://`` are accepted and given the async driver. JSON
    columns are written and read with msgspec (the standard library's ``json`` when msgspec
    refuses a value). Extra keyword arguments go to
    :func:`sqlalchemy.ext.asyncio.create_async_engine`."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    json_options: dict[str, Any] = {
        "json_serializer": json_dumps,
        "json_deserializer": json_loads,
        # a database error names its statement, never its values: they are customers'
        # names and addresses, and the error lands in logs and on failed commands
        "hide_parameters": True,
    }
    if backend == "postgresql":
        if parsed.drivername != "postgresql+asyncpg":
            parsed = parsed.set(drivername="postgresql+asyncpg")
        pool = pool or PoolOptions()
        options: dict[str, Any] = {
            **json_options,
            "pool_size": pool.size,
            "max_overflow": pool.max_overflow,
            "pool_pre_ping": pool.pre_ping,
            "pool_recycle": pool.recycle_seconds,
            "pool_timeout": pool.timeout_seconds,
            "connect_args": {"timeout": pool.connect_timeout_seconds},
        }
        options.update(kwargs)
        return create_async_engine(parsed, echo=echo, **options)
    if backend == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            # one shared connection (StaticPool): concurrent units of work would share, and
            # roll back, each other's transactions
            raise ValueError("an in-memory SQLite database is not supported: give a file path")
        if parsed.drivername != "sqlite+aiosqlite":
            parsed = parsed.set(drivername="sqlite+aiosqlite")
        engine = create_async_engine(
            parsed, echo=echo, module=one_hop_dbapi(), **{**json_options, **kwargs}
        )
        _configure_sqlite(engine)
        return engine
    raise ValueError(
        f"unsupported database URL {parsed.render_as_string(hide_password=True)!r}: "
        f"use one of {', '.join(d + '://' for d in SUPPORTED_DRIVERS)}"
    )


_encoder: Final = msgspec.json.Encoder()
_decoder: Final = msgspec.json.Decoder()


def json_dumps(value: Any) -> str:
    """A JSON column's text: msgspec (C, several times the standard library's speed);
    what it refuses (a lone surrogate...) as the standard library writes it."""
    try:
        return _encoder.encode(value).decode()
    except (TypeError, ValueError, UnicodeEncodeError, OverflowError):
        return json.dumps(value)


def json_loads(text: str | bytes) -> Any:
    """A JSON column's value: msgspec; the standard library for what msgspec refuses
    (``NaN``, an escaped lone surrogate, written by older versions on SQLite)."""
    try:
        return _decoder.decode(text)
    except msgspec.DecodeError:
        return json.loads(text)


def _configure_sqlite(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Take BEGIN away from the sqlite3 module (its "legacy" mode never begins a
        # transaction for SELECT or DDL): SQLAlchemy emits BEGIN IMMEDIATE below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA journal_mode = WAL")
            # FULL: WAL mode's NORMAL skips the sync at each COMMIT, so a power loss or an
            # OS crash can take back transactions already committed, such as a webhook
            # the hub has acknowledged. FULL syncs the WAL at each COMMIT (~0.2 ms here)
            cursor.execute("PRAGMA synchronous = FULL")
        finally:
            cursor.close()

    turns = _WriterTurns()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        mode = str(connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "IMMEDIATE"))
        if mode.upper() not in _SQLITE_BEGIN_MODES:
            raise ValueError(f"{SQLITE_BEGIN_OPTION}={mode!r}: not a SQLite BEGIN mode")
        if mode.upper() != "DEFERRED":
            turns.take(connection)
        try:
            begin = f"BEGIN {mode.upper()}"
            driver = connection.connection.dbapi_connection
            # on a settled connection, sent in the first statement's call to the thread
            if not (isinstance(driver, OneHopConnection) and driver.defer_begin(begin)):
                connection.exec_driver_sql(begin)
        except BaseException:
            turns.give_back(connection)
            raise

    # the turn is given back once COMMIT or ROLLBACK has returned (its sync done), not at
    # SQLAlchemy's commit/rollback events, which fire before: the next writer's BEGIN
    # IMMEDIATE would meet SQLite's lock and sleep in its busy handler
    dialect = sync_engine.dialect
    commit, rollback = dialect.do_commit, dialect.do_rollback

    def _release(dbapi_connection: Any) -> None:
        try:
            info = dbapi_connection.info
        except NotImplementedError:  # the dialect setting up a new connection: no turn
            return
        turns.release(info)

    def _do_commit(dbapi_connection: Any) -> None:
        try:
            commit(dbapi_connection)
        finally:
            _release(dbapi_connection)

    def _do_rollback(dbapi_connection: Any) -> None:
        try:
            rollback(dbapi_connection)
        finally:
            _release(dbapi_connection)

    dialect.do_commit = _do_commit  # type: ignore[method-assign]
    dialect.do_rollback = _do_rollback  # type: ignore[method-assign]

    @event.listens_for(sync_engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        turns.release(record.info)  # a connection closed or invalidated mid-transaction


_TURN: Final = "orderhub_sqlite_turn"


class _WriterTurns:
    """One asyncio lock per event loop: the writers of this process on one SQLite file,
    in the order they asked. Runs in SQLAlchemy's sync events, inside the greenlet of an
    async engine's call: it awaits the lock on the loop there (``await_only``). A sync
    engine's use (no running loop, no greenlet) takes no turn."""

    def __init__(self) -> None:
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self._owners: dict[asyncio.Lock, asyncio.Task[Any] | None] = {}

    def take(self, connection: sa.Connection) -> None:
        try:
            loop = asyncio.get_running_loop()
            task = asyncio.current_task()
        except RuntimeError:
            return
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        if task is None or self._owners.get(lock) is task:
            return  # a second transaction of the holder: SQLite's busy timeout decides
        if not in_greenlet():  # not an async engine's call: no turns there
            return
        try:
            await_only(_acquire(lock, SQLITE_BUSY_TIMEOUT_MS / 1000))
        except TimeoutError:
            return  # no turn in time: SQLite's busy handling decides, as without turns
        self._owners[lock] = task
        connection.info[_TURN] = lock

    def give_back(self, connection: sa.Connection) -> None:
        self.release(connection.info)

    def release(self, info: dict[Any, Any]) -> None:
        lock = info.pop(_TURN, None)
        if lock is not None:
            self._owners.pop(lock, None)
            lock.release()


def reading_engine(engine: AsyncEngine) -> AsyncEngine:
    """``engine`` (the same pool) for reads that lock nothing (read-only units of work).

    PostgreSQL: autocommit, so a read is its statements alone, without ``BEGIN`` and
    ``ROLLBACK`` around them (two round trips fewer); each statement sees what was
    committed when it started, which is what READ COMMITTED gives each statement of a
    transaction anyway. SQLite: a unit of work as any other (``BEGIN IMMEDIATE``, in the
    writers' turn). ``BEGIN DEFERRED`` would let reads run beside the writer, but embedded
    mode then took more CPU per webhook in both back-to-back pairs measured (its reads on
    aiosqlite threads of their own beside the writer's, all on one GIL:
    docs/performance.md), so reads keep their turn there. Either way a statement that
    would write or lock rows is refused before it is sent: on PostgreSQL it would be
    committed, or its lock released, at once."""
    if engine.dialect.name == "postgresql":
        reading = engine.execution_options(isolation_level="AUTOCOMMIT")
    else:
        reading = engine.execution_options()
    # on this engine only (its own events): the other connections of the pool pay nothing
    event.listen(reading.sync_engine, "before_cursor_execute", _refuse_writes)
    return reading


def _refuse_writes(
    _conn: sa.Connection, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool
) -> None:
    if not _reads_only(getattr(context, "compiled", None), statement):
        raise ReadOnlyViolation(
            f"a read-only unit of work does not write or lock: {statement[:60]}"
        )


def _reads_only(compiled: Any, statement: str) -> bool:
    """A plain SELECT: no INSERT, UPDATE or DELETE (not even in a CTE), no row lock (which
    autocommit would release at once), and SQL text only when it starts with SELECT."""
    query = getattr(compiled, "statement", None)
    if query is None or isinstance(query, sa.TextClause):
        text = statement.lstrip().upper()
        return text.startswith("SELECT ") or text in _SQLITE_BEGINS
    if not isinstance(query, sa.Select) or query._for_update_arg is not None:
        return False
    ctes = getattr(compiled, "ctes", None) or {}
    return not any(isinstance(cte.element, sa.Insert | sa.Update | sa.Delete) for cte in ctes)


class ReadOnlyViolation(RuntimeError):
    """A write, a row lock or a commit in a read-only unit of work (a programming error)."""


async def _acquire(lock: asyncio.Lock, seconds: float) -> None:
    async with asyncio.timeout(seconds):
        await lock.acquire()


async def ping(engine: AsyncEngine, *, seconds: float = 2.0) -> bool:
    """True when the database answers ``SELECT 1`` within ``seconds``."""
    try:
        async with asyncio.timeout(seconds), engine.connect() as connection:
            # a probe needs no write lock: on SQLite it must not queue behind writers
            await connection.execution_options(**{SQLITE_BEGIN_OPTION: "DEFERRED"})
            await connection.execute(sa.text("SELECT 1"))
    except (SQLAlchemyError, OSError, TimeoutError):
        return False
    return True
