"""The shared rate budget: never more spends than the limit in any window, across engines
(two processes) and concurrent spenders, on both backends."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from orderhub.adapters.persistence.budgets import SqlRateBudget
from orderhub.adapters.persistence.engine import create_engine


class StepClock:
    def __init__(self) -> None:
        self.at = datetime(2026, 11, 30, 8, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


async def test_a_budget_refuses_past_its_limit_and_frees_as_the_window_slides(
    engine: AsyncEngine,
) -> None:
    clock = StepClock()
    budget = SqlRateBudget(engine, clock)
    assert await budget.spend("octopia/a/token", limit=3, window_seconds=60) is None
    clock.advance(10)
    assert await budget.spend("octopia/a/token", limit=3, window_seconds=60) is None
    assert await budget.spend("octopia/a/token", limit=3, window_seconds=60) is None
    wait = await budget.spend("octopia/a/token", limit=3, window_seconds=60)
    assert wait == pytest.approx(50.0)  # the first spend leaves the window in 50 s
    assert await budget.spend("octopia/b/token", limit=3, window_seconds=60) is None  # own key
    clock.advance(50)
    assert await budget.spend("octopia/a/token", limit=3, window_seconds=60) is None
    assert await budget.spend("octopia/a/token", limit=3, window_seconds=60) == pytest.approx(10)


async def test_a_lowered_limit_waits_for_enough_spends_to_leave(engine: AsyncEngine) -> None:
    clock = StepClock()
    budget = SqlRateBudget(engine, clock)
    for second in range(4):
        clock.at = datetime(2026, 11, 30, 8, 0, second, tzinfo=UTC)
        assert await budget.spend("k", limit=4, window_seconds=100) is None
    # limit 2 now, at 3 s: one spend may stay, so those at 0, 1 and 2 s must leave: 102 s
    assert await budget.spend("k", limit=2, window_seconds=100) == pytest.approx(99.0)


async def test_processes_spending_at_once_share_one_budget(database_url: str) -> None:
    """Two engines (two processes), 40 concurrent spenders, a limit of 7: exactly 7 taken."""
    clock = StepClock()
    engines = [create_engine(database_url), create_engine(database_url)]
    try:
        budgets = [SqlRateBudget(e, clock) for e in engines]
        results = await asyncio.wait_for(
            asyncio.gather(
                *(budgets[i % 2].spend("shared", limit=7, window_seconds=3600) for i in range(40))
            ),
            timeout=120,
        )
    finally:
        for e in engines:
            await e.dispose()
    assert sum(r is None for r in results) == 7
    assert all(r is None or 0 < r <= 3600 for r in results)


async def test_bad_budgets_are_refused(engine: AsyncEngine) -> None:
    budget = SqlRateBudget(engine, StepClock())
    with pytest.raises(ValueError, match="limit"):
        await budget.spend("k", limit=0, window_seconds=60)
    with pytest.raises(ValueError, match="key"):
        await budget.spend("x" * 201, limit=1, window_seconds=60)


async def test_a_clock_set_back_counts_later_spends_as_now(engine: AsyncEngine) -> None:
    clock = StepClock()
    budget = SqlRateBudget(engine, clock)
    assert await budget.spend("k", limit=1, window_seconds=60) is None
    clock.advance(-3600)  # an hour back: the spend would otherwise block for 61 minutes
    assert await budget.spend("k", limit=1, window_seconds=60) == pytest.approx(60.0)


async def test_by_default_the_databases_own_clock_counts(engine: AsyncEngine) -> None:
    budget = SqlRateBudget(engine)
    assert await budget.spend("k", limit=1, window_seconds=3600) is None
    wait = await budget.spend("k", limit=1, window_seconds=3600)
    assert wait is not None
    assert 3000 < wait <= 3600


async def test_a_spend_waits_a_bounded_time_for_a_row_another_holds(postgres_url: str) -> None:
    """A holder frozen mid-transaction (a paused VM) makes a spend fail, not hang."""
    engine = create_engine(postgres_url)
    try:
        budget = SqlRateBudget(engine, StepClock())
        assert await budget.spend("held", limit=5, window_seconds=60) is None
        async with engine.connect() as holder:
            await holder.begin()
            await holder.exec_driver_sql("SELECT * FROM rate_budgets WHERE key = 'held' FOR UPDATE")
            with pytest.raises(DBAPIError, match="timeout"):
                await asyncio.wait_for(budget.spend("held", limit=5, window_seconds=60), timeout=60)
            await holder.rollback()
        assert await budget.spend("held", limit=5, window_seconds=60) is None
    finally:
        await engine.dispose()
