"""Read-only units of work (``hub.uow(read_only=True)``): reads that lock nothing.

On PostgreSQL they run in autocommit (no ``BEGIN``/``ROLLBACK`` round trips; the round
trips themselves are counted in ``test_sql_round_trips.py``), on SQLite as any unit of
work. On both, a write or a row lock is refused before it is sent, and so is a commit;
the pooled connection goes back as it came."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from tests.integration.persistence.conftest import inbox_message

from orderhub.adapters.persistence import SqlUnitOfWorkFactory
from orderhub.adapters.persistence.engine import ReadOnlyViolation
from orderhub.adapters.persistence.tables import inbox_messages


async def test_a_read_only_unit_reads_what_is_committed(uow_factory: SqlUnitOfWorkFactory) -> None:
    message = inbox_message("wh-1")
    async with uow_factory() as uow:
        await uow.inbox.add(message)
        uow.record("command.succeeded", order=None, data={"n": 1})
        await uow.commit()

    async with uow_factory(read_only=True) as uow:
        assert await uow.inbox.id_for("wh-1") == message.id
        assert [e.type for e in await uow.feed.read(after=0, limit=10)] == ["command.succeeded"]


async def test_a_read_only_unit_refuses_to_write_or_commit(
    uow_factory: SqlUnitOfWorkFactory,
) -> None:
    async with uow_factory(read_only=True) as uow:
        with pytest.raises(ReadOnlyViolation, match="does not write"):
            await uow.inbox.add(inbox_message("wh-1"))
    async with uow_factory(read_only=True) as uow:
        uow.record("command.succeeded", order=None, data={})
        with pytest.raises(ReadOnlyViolation, match="does not commit"):
            await uow.commit()

    async with uow_factory() as uow:  # nothing reached the database
        assert await uow.inbox.id_for("wh-1") is None
        assert await uow.feed.read(after=0, limit=10) == []


async def test_the_next_unit_on_the_same_connection_is_a_transaction_again(
    uow_factory: SqlUnitOfWorkFactory,
) -> None:
    """The pool hands the connection a read-only unit used to the next unit of work: what
    that one does not commit is rolled back, as ever."""
    async with uow_factory(read_only=True) as uow:
        assert await uow.inbox.id_for("wh-1") is None
    async with uow_factory() as uow:
        assert await uow.inbox.add(inbox_message("wh-1"))
        # left without commit: rolled back
    async with uow_factory(read_only=True) as uow:
        assert await uow.inbox.id_for("wh-1") is None


async def test_writes_and_locks_in_any_form_are_refused(
    uow_factory: SqlUnitOfWorkFactory,
) -> None:
    """Raw SQL, a write inside a CTE and a row lock (autocommit would release it at once)
    are refused as an INSERT is; nothing reaches the database."""
    m = inbox_messages.c
    attempts: list[Callable[[AsyncConnection], Awaitable[object]]] = [
        lambda c: c.execute(sa.text("UPDATE feed_counter SET value = value + 1")),
        lambda c: c.exec_driver_sql("DELETE FROM inbox_messages"),
        lambda c: c.execute(sa.select(sa.delete(inbox_messages).returning(m.id).cte("gone").c.id)),
        lambda c: c.execute(sa.select(m.id).with_for_update()),
    ]
    async with uow_factory() as uow:
        await uow.inbox.add(inbox_message("wh-1"))
        await uow.commit()
    for attempt in attempts:
        async with uow_factory(read_only=True) as uow:
            connection = uow._tx.conn()
            with pytest.raises(ReadOnlyViolation):
                await attempt(connection)
            # reads go on: a plain SELECT, and SQL text that is one
            assert (await connection.execute(sa.select(m.id))).scalar_one() is not None
            assert (await connection.execute(sa.text("SELECT 1"))).scalar_one() == 1

    async with uow_factory(read_only=True) as uow:
        assert await uow.inbox.id_for("wh-1") is not None
