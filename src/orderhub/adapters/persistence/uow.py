"""The SQL unit of work: one database transaction, committed whole or not at all."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from orderhub.adapters.persistence import feed
from orderhub.adapters.persistence import statements as q
from orderhub.adapters.persistence.documents import DirectoryDocumentStore, SqlDocumentStore
from orderhub.adapters.persistence.engine import ReadOnlyViolation, reading_engine
from orderhub.adapters.persistence.feed import PendingEvent
from orderhub.adapters.persistence.health import SqlHealthStore
from orderhub.adapters.persistence.mapping import order_to_row
from orderhub.adapters.persistence.outbox import SqlCommandRepository, SqlInboxRepository
from orderhub.adapters.persistence.overview import SqlOverviewReader
from orderhub.adapters.persistence.repositories import (
    SqlCursorStore,
    SqlFeedReader,
    SqlIdempotencyStore,
    SqlOrderRepository,
    TrackedOrder,
    Transaction,
    snapshot_of,
)
from orderhub.application.ports import Clock, UnitOfWork, UnitOfWorkFactory
from orderhub.domain.errors import ConcurrencyConflict
from orderhub.domain.model import Order
from orderhub.metrics import FEED_EVENTS

_UNIQUE_VIOLATION_SQLSTATE: Final = "23505"
_SQLITE_UNIQUE_ERRORS: Final = frozenset(
    {"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"}
)


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class SqlUnitOfWork:
    """:class:`~orderhub.application.ports.UnitOfWork` over SQLAlchemy Core.

    One connection and one transaction per ``async with``; leaving the block without
    :meth:`commit` rolls back. Orders loaded or added are tracked (one instance per id);
    :meth:`commit` then, in this order:

    1. writes every new order (INSERT, ``version`` 1) and every changed one with optimistic
       concurrency (``UPDATE ... WHERE id = :id AND version = :seen``); an order someone
       else changed since it was read, or a second order for the same channel order,
       raises :class:`~orderhub.domain.errors.ConcurrencyConflict`. An order that was only
       read is not written: readers never make writers conflict;
    2. inserts the commands added to ``commands``;
    3. hands the events of every tracked order and those given to :meth:`record` to the
       feed, which numbers and inserts them and sets the orders' ``last_seq`` (see
       :mod:`orderhub.adapters.persistence.feed`): on PostgreSQL COMMIT itself numbers
       them, so the counter lock is never held across a round trip; on SQLite the counter
       is taken here, last;
    4. commits, then bumps the orders' ``version`` and empties their ``events``. An
       order's ``last_seq`` stays as it was read (PostgreSQL numbers the events in COMMIT,
       which hands nothing back): read the order again for its new one.

    After a commit the unit may be used again: the next statement starts a new
    transaction, which is again rolled back unless committed.

    A read-only unit (``factory(read_only=True)``) reads on :func:`reading_engine`: in
    autocommit on PostgreSQL, as any unit on SQLite; it refuses to write, lock rows or
    commit.

    Inbox rows, command updates (``save``), cursors and idempotency keys are written when
    their method is called, in the same transaction. PostgreSQL runs at READ COMMITTED
    (the feed relies on it); on SQLite every transaction is ``BEGIN IMMEDIATE``, so units
    of work that touch the database run one at a time (see ``engine.py``).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        clock: Clock | None = None,
        documents_directory: Path | None = None,
        read_only: bool = False,
    ) -> None:
        self._engine = engine
        self._read_only = read_only
        self._clock: Clock = clock or SystemClock()
        self._tx = Transaction(clock=self._clock)
        self._recorded: list[PendingEvent] = []
        self.orders = SqlOrderRepository(self._tx)
        self.commands = SqlCommandRepository(self._tx)
        self.inbox = SqlInboxRepository(self._tx)
        self.feed = SqlFeedReader(self._tx)
        self.cursors = SqlCursorStore(self._tx)
        self.idempotency = SqlIdempotencyStore(self._tx)
        self.overview = SqlOverviewReader(self._tx)
        self.health = SqlHealthStore(self._tx)
        self.documents: SqlDocumentStore = (
            SqlDocumentStore(self._tx)
            if documents_directory is None
            else DirectoryDocumentStore(self._tx, directory=documents_directory)
        )

    async def __aenter__(self) -> Self:
        if self._tx.connection is not None:
            raise RuntimeError("this unit of work is already open")
        self._tx.connection = await self._engine.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        connection = self._tx.connection
        if connection is None:
            return
        try:
            if connection.in_transaction():
                await connection.rollback()
        finally:
            self._reset()
            self._tx.connection = None
            await connection.close()

    def record(self, event_type: str, *, order: Order | None, data: dict[str, Any]) -> None:
        self._recorded.append(
            PendingEvent(
                type=event_type,
                order_id=None if order is None else order.id,
                channel=None if order is None else order.channel,
                account=None if order is None else order.account,
                occurred_at=self._clock.now(),
                data=data,
            )
        )

    async def commit(self) -> None:
        if self._read_only:
            raise ReadOnlyViolation("a read-only unit of work does not commit")
        connection = self._tx.conn()
        written = await self._write_orders(connection)
        try:
            await self.commands.write_new()
        except IntegrityError as exc:
            if _is_unique_violation(exc):  # two writers numbered a command of one order alike
                raise ConcurrencyConflict(f"commands were added concurrently: {exc}") from exc
            raise
        tracked = list(self._tx.orders.values())
        events = [
            PendingEvent(
                type=str(event.type),
                order_id=entry.order.id,
                channel=entry.order.channel,
                account=entry.order.account,
                occurred_at=entry.order.updated_at,
                data=event.data,
            )
            for entry in tracked
            for event in entry.order.events
        ]
        events.extend(self._recorded)
        await feed.append(connection, events)
        await self._before_commit()
        await connection.commit()
        for event in events:
            FEED_EVENTS.labels(type=event.type).inc()
        for entry in tracked:
            entry.order.events.clear()
            if entry.order.id in written:
                entry.order.version = written[entry.order.id]
                entry.seen_version = entry.order.version
                entry.snapshot = snapshot_of(entry.order)
        self._tx.new_commands.clear()
        self._recorded.clear()

    async def rollback(self) -> None:
        connection = self._tx.conn()
        await connection.rollback()
        self._reset()

    async def _before_commit(self) -> None:
        """Runs right before COMMIT, the events handed to the feed (on SQLite the feed
        counter is locked by then; on PostgreSQL COMMIT takes it). Tests override it to
        force interleavings of concurrent commits; it does nothing here."""

    def _reset(self) -> None:
        self._tx.forget()
        self._recorded.clear()

    async def _write_orders(self, connection: AsyncConnection) -> dict[str, int]:
        """Insert or update every tracked order that changed; their new versions, by id."""
        written: dict[str, int] = {}
        for entry in self._tx.orders.values():
            if entry.is_new:
                written[entry.order.id] = await self._insert(connection, entry.order)
            elif entry.changed():
                written[entry.order.id] = await self._update(connection, entry)
        return written

    @staticmethod
    async def _insert(connection: AsyncConnection, order: Order) -> int:
        row = order_to_row(order)
        row["version"] = order.version + 1
        try:
            await connection.execute(q.INSERT_ORDER, row)
        except IntegrityError as exc:
            if _is_unique_violation(exc):
                raise ConcurrencyConflict(
                    f"order {order.channel}/{order.account}/{order.channel_order_id} "
                    f"(or id {order.id}) was stored meanwhile"
                ) from exc
            raise
        return int(row["version"])

    @staticmethod
    async def _update(connection: AsyncConnection, entry: TrackedOrder) -> int:
        order = entry.order
        seen = entry.seen_version
        assert seen is not None
        row = order_to_row(order)
        row["version"] = seen + 1
        params = {k: v for k, v in row.items() if k != "id"}
        params.update(b_id=order.id, b_seen=seen)
        result = await connection.execute(q.UPDATE_ORDER_SEEN, params)
        if result.rowcount != 1:
            raise ConcurrencyConflict(
                f"order {order.id} changed since it was read (version {seen})"
            )
        return seen + 1


def _is_unique_violation(exc: IntegrityError) -> bool:
    original = exc.orig
    sqlstate = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
    if sqlstate is not None:
        return str(sqlstate) == _UNIQUE_VIOLATION_SQLSTATE
    name = getattr(original, "sqlite_errorname", None)
    if name is not None:
        return str(name) in _SQLITE_UNIQUE_ERRORS
    return "unique" in str(original).lower()


class SqlUnitOfWorkFactory:
    """:class:`~orderhub.application.ports.UnitOfWorkFactory`: a new unit per call.
    ``documents_directory``: documents are written there (else in the database)."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        clock: Clock | None = None,
        documents_directory: Path | None = None,
    ) -> None:
        self.engine = engine
        self.reading = reading_engine(engine)
        self.clock = clock
        self.documents_directory = documents_directory

    def __call__(self, *, read_only: bool = False) -> SqlUnitOfWork:
        return SqlUnitOfWork(
            self.reading if read_only else self.engine,
            clock=self.clock,
            documents_directory=self.documents_directory,
            read_only=read_only,
        )


if TYPE_CHECKING:

    def _implements_the_ports(engine: AsyncEngine) -> tuple[UnitOfWork, UnitOfWorkFactory]:
        return SqlUnitOfWork(engine), SqlUnitOfWorkFactory(engine)
