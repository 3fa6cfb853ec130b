"""SQLite's statements in one hop each to aiosqlite's thread (embedded mode).

SQLAlchemy's aiosqlite adapter runs each statement as four calls to aiosqlite's thread,
each a hand-over from the event loop and back: a cursor, ``execute``, ``fetchall`` and
``close``. Embedded mode runs intake, processing and the scheduler on one event loop, so
these hand-overs were most of a webhook's CPU. Here the cursor does the four in one
function on aiosqlite's thread and keeps what it returned (the rows, the description,
the row count and the last row id); a statement is one hand-over. The connection,
``BEGIN``, ``COMMIT`` and ``ROLLBACK`` are aiosqlite's and SQLAlchemy's as before.

Results are read whole before the hop returns, as SQLAlchemy's adapter does for every
cursor that is not server-side (the hub uses none; a server-side cursor keeps
SQLAlchemy's own class)."""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any, cast

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


def _run(connection: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> _Outcome:
    """On aiosqlite's thread: the statement, its rows, description, row count, last id."""
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

    __slots__ = ("_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: AsyncAdapt_dbapi_connection) -> None:
        # no aiosqlite cursor: made, used and closed inside each statement's one call
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._soft_closed_memoized = EMPTY_DICT
        self._rows: collections.deque[Any] = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        return self._call(operation, parameters, many=False)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        return self._call(operation, seq_of_parameters, many=True)

    def _call(self, operation: str, parameters: Any, *, many: bool) -> None:
        connection = cast(OneHopConnection, self._adapt_connection)
        connection.settled = False  # before it is queued: see OneHopConnection
        driver = cast(aiosqlite.Connection, self._connection)
        # aiosqlite's own way onto its thread (its cursor's methods call it), untyped
        call = cast(Callable[..., Awaitable[_Outcome]], driver._execute)
        try:
            outcome = await_(call(_run, driver._conn, operation, parameters, many))
        except Exception as error:
            self._adapt_connection._handle_exception(error)
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
    """aiosqlite's connection, with :class:`OneHopCursor` cursors and no call for a
    ``ROLLBACK`` that has nothing to undo.

    The pool rolls a connection back as it takes it back, also after a unit of work has
    committed: one more call to the thread per unit of work, for nothing. ``settled`` is
    True only while the last call queued to the thread was a ``COMMIT`` or ``ROLLBACK``
    that has returned: nothing can be open then, and a rollback is skipped. Any
    statement clears it before it is queued, so one cancelled in flight (still to run on
    the thread) leaves it clear, and the rollback is queued behind it as before."""

    __slots__ = ("settled",)
    _cursor_cls = OneHopCursor

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self.settled = False

    def commit(self) -> None:
        self.settled = False
        super().commit()
        self.settled = True

    def rollback(self) -> None:
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
