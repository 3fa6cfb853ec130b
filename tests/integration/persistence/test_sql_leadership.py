"""One scheduler at a time: a database-wide lock that a standby waits for."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from structlog.testing import capture_logs

from orderhub.adapters.persistence import create_engine, leadership
from orderhub.adapters.persistence.leadership import Term, _watch, lock_key


@pytest.mark.postgres
async def test_a_second_holder_waits_until_the_first_lets_go(postgres_url: str) -> None:
    first_engine, second_engine = create_engine(postgres_url), create_engine(postgres_url)
    stop = asyncio.Event()
    order: list[str] = []
    try:
        async with leadership(first_engine, "test.lock", stop=stop) as first:
            assert first is not None
            assert first.held

            async def standby() -> None:
                async with leadership(
                    second_engine, "test.lock", stop=stop, poll_seconds=0.05
                ) as second:
                    order.append(f"second:{second is not None}")

            waiting = asyncio.create_task(standby())
            await asyncio.sleep(0.3)
            assert order == []  # still standing by while the first holds the lock
            order.append("first lets go")
        await asyncio.wait_for(waiting, 5)
        assert order == ["first lets go", "second:True"]
    finally:
        await first_engine.dispose()
        await second_engine.dispose()


@pytest.mark.postgres
async def test_a_crashed_holder_frees_the_lock(postgres_url: str) -> None:
    holder, standby = create_engine(postgres_url), create_engine(postgres_url)
    stop = asyncio.Event()
    context = leadership(holder, "test.crash", stop=stop)
    try:
        assert await context.__aenter__() is not None
        async with standby.connect() as conn:  # the holder's connection dies, as on a crash
            killed = await conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"
                    " AND database = (SELECT oid FROM pg_database"
                    " WHERE datname = current_database()) AND pid <> pg_backend_pid()"
                )
            )
            assert killed.scalars().all() == [True]
        async with leadership(standby, "test.crash", stop=stop, poll_seconds=0.05) as taken:
            assert taken is not None
    finally:
        with contextlib.suppress(Exception):
            await context.__aexit__(None, None, None)
        await holder.dispose()
        await standby.dispose()


@pytest.mark.postgres
async def test_a_standby_stopped_before_it_leads_yields_false(postgres_url: str) -> None:
    holder, standby = create_engine(postgres_url), create_engine(postgres_url)
    stop_holder, stop_standby = asyncio.Event(), asyncio.Event()
    try:
        async with leadership(holder, "test.stop", stop=stop_holder) as held:
            assert held is not None
            asyncio.get_running_loop().call_later(0.2, stop_standby.set)
            async with leadership(
                standby, "test.stop", stop=stop_standby, poll_seconds=0.05
            ) as taken:
                assert taken is None
    finally:
        await holder.dispose()
        await standby.dispose()


async def test_sqlite_has_one_process_and_needs_no_lock(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    try:
        async with (
            leadership(engine, "test.lock", stop=asyncio.Event()) as first,
            leadership(engine, "test.lock", stop=asyncio.Event()) as second,
        ):
            assert first is not None
            assert second is not None
            assert first.held
            assert second.held
        assert not first.held  # the block ended: let go
    finally:
        await engine.dispose()


# --- a held lock is watched ---------------------------------------------------------------

CHECK_SECONDS = 0.2
WAIT_SECONDS = 15.0  # generous: conditions are awaited, never timed


def lock_names() -> list[str]:
    """Names whose keys are negative and positive: pg_locks shows both as unsigned halves."""
    signs: dict[bool, str] = {}
    for index in range(100):
        name = f"test.watch.{index}"
        signs.setdefault(lock_key(name) < 0, name)
    return [signs[True], signs[False]]


async def holder_pid(conn: AsyncConnection, name: str) -> int:
    key = lock_key(name)
    pid = (
        await conn.execute(
            sa.text(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND objsubid = 1 AND classid = :classid AND objid = :objid"
            ),
            {"classid": (key >> 32) & 0xFFFFFFFF, "objid": key & 0xFFFFFFFF},
        )
    ).scalar_one()
    return int(pid)


async def wait_until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(CHECK_SECONDS / 4)


@pytest.mark.postgres
@pytest.mark.parametrize("name", lock_names())
async def test_a_held_lock_stays_held_across_checks(postgres_url: str, name: str) -> None:
    engine, other = create_engine(postgres_url), create_engine(postgres_url)
    try:
        async with leadership(
            engine, name, stop=asyncio.Event(), check_seconds=CHECK_SECONDS
        ) as term:
            assert term is not None
            async with other.connect() as conn:
                # autocommit: pg_stat_activity is a snapshot for a transaction's length
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                pid = await holder_pid(conn, name)
                checks: set[object] = set()

                async def checked_three_times() -> bool:
                    row = (
                        await conn.execute(
                            sa.text(
                                "SELECT query, query_start FROM pg_stat_activity WHERE pid = :pid"
                            ),
                            {"pid": pid},
                        )
                    ).one()
                    if "pg_locks" in row.query:
                        checks.add(row.query_start)
                    return len(checks) >= 3

                await wait_until(checked_three_times, "three checks of the lock")
            assert term.held  # every check found the lock (a wrong key would lose it)
    finally:
        await engine.dispose()
        await other.dispose()


@pytest.mark.postgres
async def test_a_killed_lock_connection_loses_the_term(postgres_url: str) -> None:
    engine, other = create_engine(postgres_url), create_engine(postgres_url)
    try:
        async with leadership(
            engine, "test.killed", stop=asyncio.Event(), check_seconds=CHECK_SECONDS
        ) as term:
            assert term is not None
            async with other.connect() as conn:
                pid = await holder_pid(conn, "test.killed")
                await conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            await asyncio.wait_for(term.lost.wait(), WAIT_SECONDS)
            assert term.reason == "error"
            assert not term.held
        # and the lock is free for the next holder
        async with leadership(
            other, "test.killed", stop=asyncio.Event(), poll_seconds=0.05
        ) as next_term:
            assert next_term is not None
    finally:
        await engine.dispose()
        await other.dispose()


@pytest.mark.postgres
async def test_a_check_that_gets_no_answer_in_time_loses_the_term(postgres_url: str) -> None:
    engine, other = create_engine(postgres_url), create_engine(postgres_url)
    try:
        async with leadership(
            engine, "test.stuck", stop=asyncio.Event(), check_seconds=CHECK_SECONDS
        ) as term:
            assert term is not None
            async with other.connect() as conn, conn.begin():
                # the check reads pg_locks: while it is locked, the check cannot answer
                await conn.execute(
                    sa.text("LOCK TABLE pg_catalog.pg_locks IN ACCESS EXCLUSIVE MODE")
                )
                await asyncio.wait_for(term.lost.wait(), WAIT_SECONDS)
            # the server's statement timeout or ours, whichever fires first
            assert term.reason in {"timeout", "error"}
            assert "timeout" in f"{term.reason} {term.detail}"
    finally:
        await engine.dispose()
        await other.dispose()


@pytest.mark.postgres
async def test_a_connection_without_the_lock_is_not_held(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    term = Term()
    try:
        async with engine.connect() as conn:
            await asyncio.wait_for(
                _watch(conn, lock_key("test.never-taken"), term, CHECK_SECONDS), WAIT_SECONDS
            )
        assert term.reason == "not_held"
    finally:
        await engine.dispose()


async def test_a_standby_that_cannot_reach_the_database_keeps_trying_until_stopped() -> None:
    engine = create_engine("postgresql+asyncpg://postgres@127.0.0.1:1/nowhere")
    stop = asyncio.Event()
    try:
        with capture_logs() as logs:

            async def failed_twice() -> bool:
                return sum(e["event"] == "leadership.unavailable" for e in logs) >= 2

            async def stop_after_two_failures() -> None:
                try:
                    await wait_until(failed_twice, "two failed attempts")
                finally:
                    stop.set()

            stopper = asyncio.create_task(stop_after_two_failures())
            async with leadership(engine, "test.unreachable", stop=stop, poll_seconds=0.05) as term:
                assert term is None
            await asyncio.wait_for(stopper, WAIT_SECONDS)
        assert all(e["log_level"] == "warning" for e in logs)
    finally:
        await engine.dispose()
