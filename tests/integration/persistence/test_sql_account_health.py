"""Account health in the database: the last outcome per item, a failure keeps the time the
failing began, an ok clears it; a note the database cannot take is dropped, not raised."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from orderhub.adapters.persistence import SqlUnitOfWorkFactory, create_engine
from orderhub.adapters.persistence.health import DETAIL_MAX, UnitOfWorkAccountHealth
from orderhub.testing.fakes import FixedClock


async def test_failing_since_the_first_failure_until_an_ok(engine: AsyncEngine) -> None:
    clock = FixedClock()
    start = clock.now()
    uow = SqlUnitOfWorkFactory(engine, clock=clock)
    health = UnitOfWorkAccountHealth(uow, clock)
    await health.note("octopia", "main", "token", ok=True)
    clock.advance(60)
    await health.note("octopia", "main", "token", ok=False, detail="503")
    clock.advance(60)
    await health.note("octopia", "main", "token", ok=False, detail="x" * (DETAIL_MAX + 50))
    await health.note("octopia", "other", "job octopia-poll", ok=False, detail="down")
    await health.flush()
    async with uow() as tx:
        [token, other] = await tx.health.all()  # by channel, account, item
    assert (token.item, token.ok) == ("token", False)
    assert token.failing_since == start + timedelta(seconds=60)  # the first failure
    assert token.checked_at == start + timedelta(seconds=120)
    assert token.last_ok_at == start
    assert token.detail == "x" * DETAIL_MAX  # cut, not refused
    assert (other.account, other.last_ok_at, other.detail) == ("other", None, "down")
    clock.advance(60)
    await health.note("octopia", "main", "token", ok=True)
    await health.flush()
    async with uow() as tx:
        token = (await tx.health.all())[0]
    assert (token.ok, token.failing_since, token.detail) == (True, None, "")
    assert token.last_ok_at == start + timedelta(seconds=180)


async def test_a_note_the_database_cannot_take_is_logged_and_dropped() -> None:
    clock = FixedClock()
    unreachable = create_engine("postgresql+asyncpg://nobody@127.0.0.1:1/nothing")
    try:
        health = UnitOfWorkAccountHealth(SqlUnitOfWorkFactory(unreachable, clock=clock), clock)
        with capture_logs() as logs:
            await health.note("octopia", "main", "token", ok=False, detail="503")  # no raise
            await health.flush()
    finally:
        await unreachable.dispose()
    [failed] = [e for e in logs if e["event"] == "health.note_failed"]
    assert failed["item"] == "token"


async def test_a_note_never_holds_up_its_caller_and_hides_credentials(
    engine: AsyncEngine,
) -> None:
    """The token fetch that notes its outcome goes on while the database is busy (the
    note is written afterwards), and a token endpoint's echo of the request loses its
    secret before it is stored (it is shown on the console)."""
    clock = FixedClock()
    uow = SqlUnitOfWorkFactory(engine, clock=clock)
    health = UnitOfWorkAccountHealth(uow, clock)
    gate = asyncio.Event()
    real = uow.__call__

    class Held:
        """The first unit of work waits at its door (a pool with no free connection)."""

        def __call__(self) -> Any:
            work = real()
            enter = work.__aenter__

            async def held_enter() -> Any:
                await gate.wait()
                return await enter()

            work.__aenter__ = held_enter  # type: ignore[method-assign]
            return work

    health._uow = Held()  # type: ignore[assignment]
    echo = "Bad Request: grant_type=client_credentials&client_id=c&client_secret=s3cr3t-x"
    async with asyncio.timeout(5):  # returns at once: nothing waits for the database
        await health.note("topi", "main", "token", ok=False, detail=echo)
    gate.set()
    await health.flush()
    async with uow() as tx:
        [token] = await tx.health.all()
    assert "s3cr3t-x" not in token.detail
    assert "client_secret=***" in token.detail
