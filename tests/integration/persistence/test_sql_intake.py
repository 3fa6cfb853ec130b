"""A received message stored in one round trip (``AutocommitInboxIntake``, PostgreSQL).

What the webhook's 2xx relies on: the message is committed when ``store`` returns, once
per dedupe key whatever the concurrency, and a duplicate names the message first stored,
also while that one's transaction is still open when the duplicate arrives."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.conftest import _libpq_dsn
from tests.integration.persistence.conftest import inbox_message

from orderhub.adapters.persistence import (
    PoolOptions,
    SqlUnitOfWorkFactory,
    create_engine,
    sql_inbox_intake,
)
from orderhub.adapters.persistence.intake import (
    AutocommitInboxIntake,
    IntakeUnavailable,
    NotCommitted,
)
from orderhub.entrypoints.web.problems import unreachable

pytestmark = pytest.mark.postgres


@pytest.fixture
def intake(pg_engine: AsyncEngine) -> AutocommitInboxIntake:
    made = sql_inbox_intake(pg_engine)
    assert isinstance(made, AutocommitInboxIntake)
    return made


async def test_a_new_message_is_committed_when_store_returns(
    intake: AutocommitInboxIntake, postgres_url: str
) -> None:
    message = inbox_message("wh-1")

    assert await intake.store(message) == (True, message.id)

    assert message.seq is not None
    other = await asyncpg.connect(_libpq_dsn(postgres_url))  # another session sees it
    try:
        row = await other.fetchrow(
            "SELECT id, seq, state FROM inbox_messages WHERE dedupe_key = 'wh-1'"
        )
    finally:
        await other.close()
    assert row is not None
    assert (row["id"], row["seq"], row["state"]) == (message.id, message.seq, "received")


async def test_the_connection_goes_back_to_the_pool_out_of_autocommit(
    intake: AutocommitInboxIntake, pg_engine: AsyncEngine
) -> None:
    """A unit of work taking the same pooled connection next still gets a transaction:
    what it does not commit is rolled back."""
    await intake.store(inbox_message("wh-1"))
    uow_factory = SqlUnitOfWorkFactory(pg_engine)

    async with uow_factory() as uow:
        assert await uow.inbox.add(inbox_message("wh-2"))
        # no commit: leaving rolls back
    async with uow_factory() as uow:
        assert await uow.inbox.id_for("wh-2") is None
        assert await uow.inbox.id_for("wh-1") is not None


async def test_a_duplicate_names_the_message_first_stored(
    intake: AutocommitInboxIntake,
) -> None:
    first = inbox_message("wh-1")
    await intake.store(first)
    again = inbox_message("wh-1", body=b'{"id": "CO-1", "again": true}')

    assert await intake.store(again) == (False, first.id)
    assert again.seq is None


async def test_concurrent_stores_of_one_key_store_it_once(
    intake: AutocommitInboxIntake,
) -> None:
    messages = [inbox_message("wh-same") for _ in range(12)]

    results = await asyncio.gather(*(intake.store(m) for m in messages))

    new = [m.id for m, (is_new, _) in zip(messages, results, strict=True) if is_new]
    assert len(new) == 1
    assert {stored_id for _, stored_id in results} == {new[0]}


async def test_a_duplicate_arriving_while_the_first_is_uncommitted_waits_and_names_it(
    intake: AutocommitInboxIntake, pg_engine: AsyncEngine
) -> None:
    """The insert waits on the other transaction's key; once it commits, the insert does
    nothing and the second statement (a new snapshot) finds the committed row."""
    first = inbox_message("wh-1")
    uow_factory = SqlUnitOfWorkFactory(pg_engine)
    async with uow_factory() as uow:
        assert await uow.inbox.add(first)  # holds the key, not committed yet
        duplicate = asyncio.create_task(intake.store(inbox_message("wh-1")))
        await asyncio.sleep(0.2)  # let it reach the key and wait there
        assert not duplicate.done()
        await uow.commit()
    assert await asyncio.wait_for(duplicate, 30) == (False, first.id)


async def test_a_key_whose_first_insert_rolled_back_is_stored_new(
    intake: AutocommitInboxIntake, pg_engine: AsyncEngine
) -> None:
    uow_factory = SqlUnitOfWorkFactory(pg_engine)
    second = inbox_message("wh-1")
    async with uow_factory() as uow:
        assert await uow.inbox.add(inbox_message("wh-1"))
        waiting = asyncio.create_task(intake.store(second))
        await asyncio.sleep(0.2)
        await uow.rollback()
    assert await asyncio.wait_for(waiting, 30) == (True, second.id)


def test_sqlite_keeps_the_unit_of_work(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}")
    assert sql_inbox_intake(engine) is None


async def test_a_connection_inside_a_transaction_is_refused_not_acknowledged(
    postgres_url: str,
) -> None:
    """A pooled connection carrying a transaction the driver does not know of (a raw
    ``BEGIN``): the insert would be acknowledged, then vanish with the connection. It
    raises instead (the webhook gets a 5xx and comes again), and the connection goes."""
    engine = create_engine(postgres_url, pool=PoolOptions(size=1, max_overflow=0))
    try:
        async with engine.connect() as connection:  # the pool's only connection
            raw = await connection.get_raw_connection()
            assert raw.driver_connection is not None
            await raw.driver_connection.execute("BEGIN")
        intake = sql_inbox_intake(engine)
        assert intake is not None

        with pytest.raises(NotCommitted):
            await intake.store(inbox_message("wh-1"))

        again = inbox_message("wh-1")  # the sender's retry, on a new connection
        assert await intake.store(again) == (True, again.id)
    finally:
        await engine.dispose()
    other = await asyncpg.connect(_libpq_dsn(postgres_url))
    try:
        stored = await other.fetchval("SELECT id FROM inbox_messages WHERE dedupe_key = 'wh-1'")
    finally:
        await other.close()
    assert stored == again.id


async def test_what_is_stored_reads_back_through_the_unit_of_work_as_it_was(
    intake: AutocommitInboxIntake, pg_engine: AsyncEngine
) -> None:
    """The insert's row is the unit of work's: every column, the JSON headers, the times
    (given in another zone, read back in UTC), the bytes, the empty and the set ones."""
    paris = timezone(timedelta(hours=1))
    message = dataclasses.replace(
        inbox_message("wh-1", body=b"\x00\xff raw \xe2\x82\xac"),
        headers={"webhook-id": "wh-1", "x-note": 'caf\u00e9 \u2028 "quoted"'},
        received_at=datetime(2026, 11, 30, 13, 5, 7, 123456, tzinfo=paris),
        order_key="CO-\u00e9",
        source="poll",
        attempts=2,
        fence=3,
        last_error="earlier",
        lease_until=datetime(2026, 11, 30, 12, 6, tzinfo=UTC),
    )

    assert await intake.store(message) == (True, message.id)

    async with SqlUnitOfWorkFactory(pg_engine)(read_only=True) as uow:
        found = await uow.inbox.get(message.id)
    assert found == dataclasses.replace(message, received_at=message.received_at.astimezone(UTC))
    assert found is not None
    assert found.received_at.tzinfo == UTC


async def test_a_naive_time_is_refused_before_a_connection_is_taken(
    intake: AutocommitInboxIntake,
) -> None:
    naive = dataclasses.replace(inbox_message("wh-1"), received_at=datetime(2026, 11, 30))

    with pytest.raises(ValueError, match="naive"):
        await intake.store(naive)


async def _server_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        assert raw.driver_connection is not None
        pid: int = raw.driver_connection.get_server_pid()
        return pid


@pytest.mark.parametrize("client_saw_it", [False, True])
async def test_a_connection_the_server_ended_is_503_and_dropped(
    postgres_url: str, client_saw_it: bool
) -> None:
    """The pool's connection was ended by the server (a restart, a failover): the insert
    fails under it, the outcome unknown; the webhook is answered 503 (a connection error)
    and the connection dropped, so the sender's retry gets a new one. asyncpg says so in
    different ways depending on whether it read the server's goodbye while the
    connection sat in the pool (``client_saw_it``) or only under the statement."""
    engine = create_engine(postgres_url, pool=PoolOptions(size=1, max_overflow=0))
    other = await asyncpg.connect(_libpq_dsn(postgres_url))
    try:
        pid = await _server_pid(engine)  # the pool's only connection
        assert await other.fetchval("SELECT pg_terminate_backend($1)", pid)
        if client_saw_it:
            for _ in range(200):  # bounded: the backend leaves within moments
                gone = await other.fetchval(
                    "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $1", pid
                )
                if gone:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)  # the event loop reads the goodbye meanwhile
        intake = sql_inbox_intake(engine)
        assert intake is not None

        with pytest.raises(IntakeUnavailable) as raised:
            await intake.store(inbox_message("wh-1"))
        assert isinstance(raised.value, ConnectionError)

        again = inbox_message("wh-1")
        assert await intake.store(again) == (True, again.id)
        assert await _server_pid(engine) != pid
    finally:
        await engine.dispose()
        await other.close()


async def test_a_store_cancelled_under_its_insert_drops_the_connection(
    postgres_url: str, pg_engine: AsyncEngine
) -> None:
    """A request cancelled while its insert waits (a shutdown, a client gone): the
    connection is not pooled with a cancel in flight; the next store gets a new one."""
    engine = create_engine(postgres_url, pool=PoolOptions(size=1, max_overflow=0))
    try:
        pid = await _server_pid(engine)
        intake = sql_inbox_intake(engine)
        assert intake is not None
        async with SqlUnitOfWorkFactory(pg_engine)() as uow:
            assert await uow.inbox.add(inbox_message("wh-1"))  # holds the key
            waiting = asyncio.create_task(intake.store(inbox_message("wh-1")))
            await asyncio.sleep(0.2)  # let it reach the key and wait there
            assert not waiting.done()
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            await uow.rollback()

        again = inbox_message("wh-1")
        assert await intake.store(again) == (True, again.id)
        assert await _server_pid(engine) != pid
    finally:
        await engine.dispose()


async def test_a_statement_the_server_refuses_keeps_the_connection(
    intake: AutocommitInboxIntake, pg_engine: AsyncEngine
) -> None:
    """A clean refusal (here a channel name longer than its column) is the server's
    answer, not a lost connection: raised as it is (a 500, a bug to fix), and the
    connection stays pooled and sound."""
    before = await _server_pid(pg_engine)
    too_long = dataclasses.replace(inbox_message("wh-1"), channel="c" * 500)

    with pytest.raises(asyncpg.StringDataRightTruncationError):
        await intake.store(too_long)

    message = inbox_message("wh-2")
    assert await intake.store(message) == (True, message.id)
    assert await _server_pid(pg_engine) == before


async def test_no_connection_to_be_had_is_503(postgres_url: str) -> None:
    """The pool cannot open a connection (here a database that does not exist; a server
    starting up or refusing is alike): the driver's own error, which the pool does not
    wrap, is a connection error for the webhook (503 with Retry-After), not a 500."""
    missing = postgres_url.rsplit("/", 1)[0] + "/orderhub_no_such_database"
    engine = create_engine(missing, pool=PoolOptions(size=1, max_overflow=0))
    intake = sql_inbox_intake(engine)
    assert intake is not None
    try:
        with pytest.raises(IntakeUnavailable) as raised:
            await intake.store(inbox_message("wh-1"))
        assert unreachable(raised.value)
        assert "does not exist" in str(raised.value.__cause__)  # the cause kept, for the log
    finally:
        await engine.dispose()


async def test_a_server_that_never_answers_a_connect_is_503_within_the_connect_timeout() -> None:
    """A PostgreSQL host that takes the connection and says nothing (hung, a failover half
    done): the webhook is a 503 once ``connect_timeout_seconds`` is up, not after
    asyncpg's own 60 s."""
    with socket.create_server(("127.0.0.1", 0), backlog=8) as silent:
        port = silent.getsockname()[1]
        engine = create_engine(
            f"postgresql+asyncpg://postgres@127.0.0.1:{port}/orderhub",
            pool=PoolOptions(size=1, max_overflow=0, connect_timeout_seconds=0.5),
        )
        intake = sql_inbox_intake(engine)
        assert intake is not None
        started = time.monotonic()
        try:
            with pytest.raises(IntakeUnavailable) as raised:
                await intake.store(inbox_message("wh-1"))
        finally:
            await engine.dispose()
        assert time.monotonic() - started < 30  # asyncpg's default would be 60 s
        assert unreachable(raised.value)
