"""Read-only units of work (``hub.uow(read_only=True)``): reads that lock nothing.

On PostgreSQL they run in autocommit (no ``BEGIN``/``ROLLBACK`` round trips; the round
trips themselves are counted in ``test_sql_round_trips.py``), on SQLite in a ``BEGIN
DEFERRED`` transaction that takes no writer's turn. On both, a write is refused before it
is sent, and so is a commit; the pooled connection goes back as it came."""

from __future__ import annotations

import asyncio
from typing import Final

import pytest
from tests.integration.persistence.conftest import inbox_message

from orderhub.adapters.persistence import SqlUnitOfWorkFactory
from orderhub.adapters.persistence.engine import SQLITE_BUSY_TIMEOUT_MS, ReadOnlyViolation

BOUND: Final = SQLITE_BUSY_TIMEOUT_MS / 1000 / 3  # a reader queued behind the writer: 30 s


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


async def test_a_reader_does_not_wait_for_a_writer_in_progress(
    uow_factory: SqlUnitOfWorkFactory,
) -> None:
    """SQLite: the writer holds the writers' turn and SQLite's write lock until it
    commits; a read-only unit reads beside it (WAL) and sees the last commit. PostgreSQL:
    a reader never waited for a writer; the same holds."""
    async with uow_factory() as uow:
        await uow.inbox.add(inbox_message("wh-1"))
        await uow.commit()
    async with uow_factory() as writer:
        await writer.inbox.add(inbox_message("wh-2"))  # the turn and the lock are taken

        async def read() -> tuple[str | None, str | None]:
            async with uow_factory(read_only=True) as reader:
                return await reader.inbox.id_for("wh-1"), await reader.inbox.id_for("wh-2")

        first, second = await asyncio.wait_for(read(), BOUND)
        assert first is not None
        assert second is None  # not committed yet
        await writer.commit()
