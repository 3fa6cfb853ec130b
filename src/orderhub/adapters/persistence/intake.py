"""A received message stored in one round trip on PostgreSQL (``serve``'s webhook path).

Through a unit of work, storing a webhook takes three round trips, each a wait for
PostgreSQL and then for the event loop: ``BEGIN``, ``INSERT ... ON CONFLICT DO NOTHING``,
``COMMIT``. Here the insert runs alone on a connection in autocommit, so PostgreSQL
commits it as the statement ends: one round trip, and the 2xx still waits for the commit
(durable before acknowledged). A duplicate takes a second statement for the id of the
message first stored, as before.

The statement goes to asyncpg directly, on a connection of the engine's pool: SQLAlchemy's
execute path around it (compiled parameters, type processors, a cursor, a result) cost
more CPU than asyncpg's own, 340-380 against 240-280 µs per message stored. The
connection is checked out of the pool as a raw connection, not through an
``AsyncConnection`` (its events, transaction and isolation-level bookkeeping): 43 against
85 µs of CPU per checkout, statement and return. asyncpg runs a statement outside an
explicit transaction in autocommit, and the pool's rollback on return is a no-op for a
connection on which SQLAlchemy began nothing. The row is
the one :func:`~orderhub.adapters.persistence.mapping.message_to_row` makes for the unit
of work, its JSON written and its times checked as the column types would
(``tests/integration/persistence/test_sql_intake.py`` reads one back through the unit of
work). asyncpg keeps the statement prepared per connection.

The same guarantees as the unit of work's ``add``: the dedupe key's unique index decides;
an insert racing another one of the same key waits for it and, if it commits, does
nothing (the second statement, a new snapshot, then sees that row). A connection lost
mid-statement leaves the outcome unknown, as a lost ``COMMIT`` did: the connection is
dropped, the request is answered 503 (:class:`IntakeUnavailable`), the channel sends the
message again and the dedupe key answers it. Anything but the server's clean refusal of
the statement counts as lost (asyncpg reports a connection the server closed while it
was idle in more ways than one), and so does a request cancelled under the statement:
the connection is dropped, never pooled with a cancel in flight. Only that connection is
dropped: when the server restarted, each other pooled one fails its first statement the
same way (the unit of work's path, through SQLAlchemy, drops the whole pool's at its
first; ``[database] pool_pre_ping`` tests each at checkout instead).

SQLite keeps the unit of work (:func:`sql_inbox_intake` gives None): one writer at a
time there, and the writers' turn is taken by the unit of work's ``BEGIN IMMEDIATE``."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from typing import Any, Final

import asyncpg
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

from orderhub.adapters.persistence.engine import json_dumps
from orderhub.adapters.persistence.mapping import message_to_row, utc
from orderhub.adapters.persistence.tables import INBOX_SEQ, inbox_messages
from orderhub.application.ports import InboxIntake, InboxMessage

__all__ = ["AutocommitInboxIntake", "IntakeUnavailable", "NotCommitted", "sql_inbox_intake"]

_COLUMNS: Final = tuple(column.name for column in inbox_messages.columns if column.name != "seq")
INSERT: Final = (
    f"INSERT INTO {inbox_messages.name} ({', '.join(_COLUMNS)}, seq) "
    f"VALUES ({', '.join(f'${n}' for n in range(1, len(_COLUMNS) + 1))}, "
    f"nextval('{INBOX_SEQ.name}')) "
    "ON CONFLICT (dedupe_key) DO NOTHING RETURNING seq"
)
ID_BY_KEY: Final = f"SELECT id FROM {inbox_messages.name} WHERE dedupe_key = $1"
_LOST: Final = (
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08
    asyncpg.exceptions.OperatorInterventionError,  # class 57: shutting down, cancelled
)
"""Errors the server reports that end, or may end, the connection."""
DROP_SECONDS: Final = 5.0


class IntakeUnavailable(ConnectionError):
    """No connection could be had, or the connection failed under the statement (the
    outcome is unknown; the connection is dropped): the webhook is answered 503 (a
    connection error: Retry-After) and sent again."""


class NotCommitted(ConnectionError):
    """The connection was inside a transaction: the insert is not committed. The webhook
    is answered 503 (a connection error: Retry-After) and sent again; the connection is
    dropped."""


def insert_values(message: InboxMessage) -> list[Any]:
    """The insert's parameters: the unit of work's row, as its column types write it."""
    row = message_to_row(message)
    return [_written(row[name]) for name in _COLUMNS]


def _written(value: Any) -> Any:
    if isinstance(value, dict):  # the headers: the JSONB codec takes the JSON text
        return json_dumps(value)
    if isinstance(value, datetime):
        return utc(value)
    return value


class AutocommitInboxIntake:
    """:class:`~orderhub.application.ports.InboxIntake` on PostgreSQL: one statement, in
    autocommit, on a connection of the engine's pool."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine  # the same pool as the units of work

    async def store(self, message: InboxMessage) -> tuple[bool, str | None]:
        values = insert_values(message)  # a value refused here holds no connection
        try:
            pooled = await self._engine.raw_connection()
        except sa_exc.TimeoutError:
            raise  # the pool is exhausted: answered 503 as it is
        except Exception as exc:  # the pool gives the driver's own error, unwrapped
            raise IntakeUnavailable(
                f"no database connection to store the message ({type(exc).__name__})"
            ) from exc
        try:
            driver = _driver(pooled)
            seq = await driver.fetchval(INSERT, *values)
            _committed(driver)
            first = (
                None if seq is not None else await driver.fetchval(ID_BY_KEY, message.dedupe_key)
            )
        except NotCommitted:
            await _drop(pooled)  # closed, the open transaction rolled back
            raise
        except Exception as exc:
            if not _refused(exc, pooled):
                await _drop(pooled)
                raise IntakeUnavailable(
                    f"the database connection failed under the insert ({type(exc).__name__})"
                ) from exc
            await _give_back(pooled)  # the statement refused, the connection idle and sound
            raise
        except BaseException:  # cancelled under the statement: never pooled so
            await _drop(pooled)
            raise
        await _give_back(pooled)
        if seq is not None:
            message.seq = int(seq)
            return True, message.id
        return False, None if first is None else str(first)


def _refused(exc: Exception, pooled: PoolProxiedConnection) -> bool:
    """The server refused the statement and the connection is still sound (in autocommit,
    nothing is left open): a data error, a lock timeout... answered as before."""
    driver = pooled.driver_connection
    return (
        isinstance(exc, asyncpg.PostgresError)
        and not isinstance(exc, _LOST)
        and isinstance(driver, asyncpg.Connection)
        and not driver.is_closed()
        and not driver.is_in_transaction()
    )


async def _give_back(pooled: PoolProxiedConnection) -> None:
    """Return the connection to the pool (its reset: a rollback, nothing to roll back)."""
    await greenlet_spawn(pooled.close)


async def _drop(pooled: PoolProxiedConnection) -> None:
    """Close the connection for good, whatever state it is in, and give its place in the
    pool back (shielded: a cancelled request still drops it)."""
    with contextlib.suppress(Exception):
        await asyncio.shield(asyncio.wait_for(greenlet_spawn(pooled.invalidate), DROP_SECONDS))


def _driver(pooled: PoolProxiedConnection) -> asyncpg.Connection:
    driver = pooled.driver_connection
    assert isinstance(driver, asyncpg.Connection), "AutocommitInboxIntake is for asyncpg"
    return driver


def _committed(driver: asyncpg.Connection) -> None:
    """Make sure the statement was committed: the server says, in the status every answer
    ends with (asyncpg keeps it: no round trip), whether a transaction is still open on
    the connection. One would be if the connection came out of the pool inside a
    transaction the driver did not know of (a raw ``BEGIN``, a reconnect that lost the
    autocommit setting): the insert would then be acknowledged, yet vanish with the
    connection. That is refused, never acknowledged."""
    if driver.is_in_transaction():
        raise NotCommitted("the connection was inside a transaction: the insert is not committed")


def sql_inbox_intake(engine: AsyncEngine) -> InboxIntake | None:
    """The intake for ``engine``: one round trip on PostgreSQL; None (a unit of work) else."""
    return AutocommitInboxIntake(engine) if engine.dialect.name == "postgresql" else None
