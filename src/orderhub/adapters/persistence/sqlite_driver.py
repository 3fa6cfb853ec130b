"""SQLite's statements in one hop each to aiosqlite's thread (embedded mode).

SQLAlchemy's aiosqlite adapter runs each statement as four calls to aiosqlite's thread,
each a hand-over from the event loop and back: a cursor, ``execute``, ``fetchall`` and
``close``. Embedded mode runs intake, processing and the scheduler on one event loop, so
these hand-overs were most of a webhook's CPU. Here the cursor does the four in one
function on aiosqlite's thread and keeps what it returned (the rows, the description,
the row count and the last row id); a statement is one hand-over. A unit of work's
``BEGIN IMMEDIATE`` goes in the call of its first statement, before it, and the pool's
rollback after a ``COMMIT`` is skipped (:class:`OneHopConnection`): a unit of work is a
call per statement and one for its ``COMMIT`` (it was three or four per statement, the
``BEGIN`` one of them, and two to end). ``COMMIT`` and ``ROLLBACK`` are aiosqlite's.

Results are read whole before the hop returns, as SQLAlchemy's adapter does for every
cursor that is not server-side. A server-side cursor (streamed results: the hub uses
none) keeps SQLAlchemy's own class, after any ``BEGIN`` still to be sent has gone in a
call of its own."""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, NoReturn, TypeVar, cast

import aiosqlite
from sqlalchemy.connectors.asyncio import AsyncAdapt_dbapi_connection
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

__all__ = ["OneHopDbapi", "one_hop_dbapi"]

_Outcome = tuple[Any, list[Any], int, int | None]
R = TypeVar("R")


class _BeginRefused(NamedTuple):
    """The ``BEGIN`` sent before a statement failed (the statement was not run):
    its error, and whether a transaction is open on the connection all the same."""

    error: Exception
    open: bool


def _begin(connection: sqlite3.Connection, begin: str) -> _BeginRefused | None:
    try:
        connection.execute(begin).close()
    except sqlite3.Error as exc:
        return _BeginRefused(exc, connection.in_transaction)
    return None


def _run(
    connection: sqlite3.Connection, begin: str | None, operation: str, parameters: Any, many: bool
) -> _Outcome | _BeginRefused:
    """On aiosqlite's thread: the transaction's ``BEGIN`` if it is still to be sent, then
    the statement; its rows, description, row count and last row id."""
    if begin is not None and (refused := _begin(connection, begin)) is not None:
        return refused
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    """A cursor whose statement, rows and close are one call on aiosqlite's thread."""

    __slots__ = ("_arraysize", "_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: AsyncAdapt_dbapi_connection) -> None:
        # no aiosqlite cursor: made, used and closed inside each statement's one call
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._soft_closed_memoized = EMPTY_DICT
        self._rows: collections.deque[Any] = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        return self._call(operation, parameters, many=False)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        return self._call(operation, seq_of_parameters, many=True)

    def _call(self, operation: str, parameters: Any, *, many: bool) -> None:
        connection = cast(OneHopConnection, self._adapt_connection)
        begin, connection.begin = connection.begin, None
        connection.settled = False  # before it is queued: see OneHopConnection
        outcome = connection.on_thread(_run, begin, operation, parameters, many)
        if isinstance(outcome, _BeginRefused):  # e.g. SQLite's lock not had in time
            connection.refused(cast(str, begin), outcome)
        self._description, rows, self._rowcount, self._lastrowid = outcome
        self._rows = collections.deque(rows)

    async def _async_soft_close(self) -> None:
        """Nothing left open on aiosqlite's thread: the rows are here already."""

    def close(self) -> None:
        self._rows.clear()

    def nextset(self) -> None:
        raise NotImplementedError("one result set per statement")

    def setinputsizes(self, *inputsizes: Any) -> None:
        """sqlite3 ignores input sizes."""


class OneHopConnection(AsyncAdapt_aiosqlite_connection):
    """aiosqlite's connection, with :class:`OneHopCursor` cursors, a transaction's
    ``BEGIN`` sent in its first statement's call, and no call for a ``ROLLBACK`` that has
    nothing to undo.

    ``settled`` is True only while the last call queued to the thread was a ``COMMIT`` or
    ``ROLLBACK`` that has returned: nothing can be open on the connection then. Any
    statement clears it before it is queued, so one cancelled in flight (still to run on
    the thread) leaves it clear. While it is set:

    * the pool's rollback as it takes the connection back (also after a unit of work has
      committed: one more call per unit of work, for nothing) is skipped;
    * a ``BEGIN`` is kept (:meth:`defer_begin`) and sent in the call of the transaction's
      first statement, before it; a transaction that sends no statement sends no
      ``BEGIN``, and its ``COMMIT`` or ``ROLLBACK`` has nothing to end. On a connection
      that is not settled, the ``BEGIN`` goes at once, in a call of its own, as before."""

    __slots__ = ("begin", "settled")
    _cursor_cls = OneHopCursor

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self.settled = False
        self.begin: str | None = None

    def cursor(self, server_side: bool = False) -> Any:
        if server_side:  # SQLAlchemy's own cursor: the BEGIN first, in a call of its own
            begin, self.begin = self.begin, None
            self.settled = False
            if begin is not None and (refused := self.on_thread(_begin, begin)) is not None:
                self.refused(begin, refused)
        return super().cursor(server_side)

    def on_thread(self, function: Callable[..., R], *args: Any) -> R:
        """``function(sqlite3_connection, *args)`` on aiosqlite's thread, in one call;
        what it raises, as SQLAlchemy's adapter raises it."""
        driver = cast(aiosqlite.Connection, self._connection)
        # aiosqlite's own way onto its thread (its cursor's methods call it), untyped
        call = cast(Callable[..., Awaitable[R]], driver._execute)
        try:
            return await_(call(function, driver._conn, *args))
        except Exception as error:
            self._handle_exception(error)

    def refused(self, begin: str, refused: _BeginRefused) -> NoReturn:
        """Raise the error of ``begin``, refused. If it left no transaction open, it is
        kept for the next statement (which tries again) and the connection is settled;
        never are later statements run outside a transaction."""
        if not refused.open:
            self.begin, self.settled = begin, True
        self._handle_exception(refused.error)

    def defer_begin(self, statement: str) -> bool:
        """Keep ``statement`` (a ``BEGIN``) for the next statement's call; False (not
        kept: send it now) unless the connection is settled."""
        if not self.settled:
            return False
        self.begin = statement
        return True

    def commit(self) -> None:
        if self.begin is not None:  # nothing was sent: no transaction to commit
            self.begin = None
            return
        self.settled = False
        super().commit()
        self.settled = True

    def rollback(self) -> None:
        self.begin = None
        if self.settled:
            return
        super().rollback()
        self.settled = True


class OneHopDbapi(AsyncAdapt_aiosqlite_dbapi):
    """aiosqlite's DBAPI adapter whose connections make :class:`OneHopCursor` cursors."""

    def connect(self, *arg: Any, **kw: Any) -> OneHopConnection:
        adapted = super().connect(*arg, **kw)
        return OneHopConnection(self, adapted._connection)


def one_hop_dbapi() -> OneHopDbapi:
    """The ``module`` for :func:`sqlalchemy.ext.asyncio.create_async_engine` on SQLite."""
    return OneHopDbapi(aiosqlite, sqlite3)
