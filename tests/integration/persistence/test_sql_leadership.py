"""One scheduler at a time: a database-wide lock that a standby waits for."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
import sqlalchemy as sa

from orderhub.adapters.persistence import create_engine, leadership


@pytest.mark.postgres
async def test_a_second_holder_waits_until_the_first_lets_go(postgres_url: str) -> None:
    first_engine, second_engine = create_engine(postgres_url), create_engine(postgres_url)
    stop = asyncio.Event()
    order: list[str] = []
    try:
        async with leadership(first_engine, "test.lock", stop=stop) as first:
            assert first is True

            async def standby() -> None:
                async with leadership(
                    second_engine, "test.lock", stop=stop, poll_seconds=0.05
                ) as second:
                    order.append(f"second:{second}")

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
        assert await context.__aenter__() is True
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
            assert taken is True
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
            assert held is True
            asyncio.get_running_loop().call_later(0.2, stop_standby.set)
            async with leadership(
                standby, "test.stop", stop=stop_standby, poll_seconds=0.05
            ) as taken:
                assert taken is False
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
            assert (first, second) == (True, True)
    finally:
        await engine.dispose()
