"""A received message stored in one round trip on PostgreSQL (``serve``'s webhook path).

Through a unit of work, storing a webhook takes three round trips, each a wait for
PostgreSQL and then for the event loop: ``BEGIN``, ``INSERT ... ON CONFLICT DO NOTHING``,
``COMMIT``. Here the insert runs alone on a connection in autocommit, so PostgreSQL
commits it as the statement ends: one round trip, and the 2xx still waits for the commit
(durable before acknowledged). A duplicate takes a second statement for the id of the
message first stored, as before.

The same guarantees as the unit of work's ``add``: the dedupe key's unique index decides;
an insert racing another one of the same key waits for it and, if it commits, does
nothing (the second statement, a new snapshot, then sees that row). A connection lost
mid-statement leaves the outcome unknown, as a lost ``COMMIT`` did: the request fails,
the channel sends the message again and the dedupe key answers it.

SQLite keeps the unit of work (:func:`sql_inbox_intake` gives None): one writer at a
time there, and the writers' turn is taken by the unit of work's ``BEGIN IMMEDIATE``."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from orderhub.adapters.persistence import statements as q
from orderhub.adapters.persistence.mapping import message_to_row
from orderhub.application.ports import InboxIntake, InboxMessage


class AutocommitInboxIntake:
    """:class:`~orderhub.application.ports.InboxIntake` on PostgreSQL: one statement, in
    autocommit, on a connection of the engine's pool."""

    def __init__(self, engine: AsyncEngine) -> None:
        # the same pool; the connection is in autocommit while it is checked out
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")

    async def store(self, message: InboxMessage) -> tuple[bool, str | None]:
        async with self._engine.connect() as connection:
            result = await connection.execute(q.ADD_MESSAGE_POSTGRESQL, message_to_row(message))
            seq = result.scalar_one_or_none()
            await _committed(connection)
            if seq is not None:
                message.seq = int(seq)
                return True, message.id
            found = await connection.execute(q.MESSAGE_ID_BY_KEY, {"b_key": message.dedupe_key})
            return False, found.scalar_one_or_none()


class NotCommitted(ConnectionError):
    """The connection was inside a transaction: the insert is not committed. The webhook
    is answered 503 (a connection error: Retry-After) and sent again; the connection is
    dropped."""


async def _committed(connection: AsyncConnection) -> None:
    """Make sure the statement was committed: the server says, in the status every answer
    ends with (asyncpg keeps it: no round trip), whether a transaction is still open on
    the connection. One would be if the connection came out of the pool inside a
    transaction the driver did not know of (a raw ``BEGIN``, a reconnect that lost the
    autocommit setting): the insert would then be acknowledged, yet vanish with the
    connection. That is refused, never acknowledged."""
    raw = await connection.get_raw_connection()
    if raw.driver_connection is not None and raw.driver_connection.is_in_transaction():
        await connection.invalidate()  # closed, the open transaction rolled back with it
        raise NotCommitted("the connection was inside a transaction: the insert is not committed")


def sql_inbox_intake(engine: AsyncEngine) -> InboxIntake | None:
    """The intake for ``engine``: one round trip on PostgreSQL; None (a unit of work) else."""
    return AutocommitInboxIntake(engine) if engine.dialect.name == "postgresql" else None
