"""Schedulers on a real PostgreSQL lock: a leader whose lock connection is killed stops its
jobs and a standby takes over; a leader that lost its lock resumes only once it holds it
again. The jobs run on the in-memory fakes; only the election is real. Conditions are
awaited with generous deadlines, never timed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from tests.unit.runtime.support import Script, make_hub

from orderhub.adapters.persistence import create_engine
from orderhub.adapters.persistence.leadership import Elect, Term, elector, lock_key
from orderhub.channels.spi import JobContext, ScheduledJob
from orderhub.config import SchedulerSettings
from orderhub.entrypoints.scheduler import Scheduler
from orderhub.metrics import REGISTRY
from orderhub.testing.fakes import RecordingQueue

pytestmark = pytest.mark.postgres

CHECK_SECONDS = 1.0
WAIT_SECONDS = 30.0


class Node:
    """One scheduler process: its own engine, a job that records when it runs."""

    def __init__(self, url: str, name: str, runs: list[tuple[str, float]]) -> None:
        self.name, self.runs = name, runs
        self.engine: AsyncEngine = create_engine(url)
        self.stop = asyncio.Event()
        job = ScheduledJob(name="poll", interval_seconds=0.05, run=self._run)
        settings = SchedulerSettings(
            first_run_jitter_seconds=0.0, leadership_check_seconds=CHECK_SECONDS
        )
        hub = make_hub(RecordingQueue(), script=Script(jobs=[job]))
        self.scheduler = Scheduler(hub, settings, sweep=False)
        self.task: asyncio.Task[None] | None = None

    async def _run(self, _ctx: JobContext) -> None:
        self.runs.append((self.name, asyncio.get_running_loop().time()))

    @property
    def count(self) -> int:
        return sum(1 for name, _ in self.runs if name == self.name)

    def lead(self, lock: str, *, only_once: bool = False) -> None:
        elect = elector(self.engine, lock, check_seconds=CHECK_SECONDS)
        if only_once:
            elect = first_term_only(elect)
        self.task = asyncio.create_task(self.scheduler.lead(elect, self.stop))

    async def close(self) -> None:
        self.stop.set()
        if self.task is not None:
            await asyncio.wait_for(self.task, WAIT_SECONDS)
        await self.engine.dispose()


def first_term_only(elect: Elect) -> Elect:
    """An election this node wins once: after it loses that term, it leaves the race."""
    terms = 0

    @contextlib.asynccontextmanager
    async def once(stop: asyncio.Event) -> AsyncIterator[Term | None]:
        nonlocal terms
        terms += 1
        if terms > 1:
            yield None
            return
        async with elect(stop) as term:
            yield term

    return once


async def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def lock_params(lock: str) -> dict[str, int]:
    key = lock_key(lock)
    return {"key": key, "classid": (key >> 32) & 0xFFFFFFFF, "objid": key & 0xFFFFFFFF}


HOLDER = sa.text(
    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
    " AND classid = :classid AND objid = :objid"
)


async def holder(conn: AsyncConnection, lock: str) -> int | None:
    pid = (await conn.execute(HOLDER, lock_params(lock))).scalar_one_or_none()
    return None if pid is None else int(pid)


def lost_count() -> float:
    sample = "orderhub_scheduler_leadership_lost_total"
    return REGISTRY.get_sample_value(sample, {"reason": "error"}) or 0.0


async def test_a_leader_whose_lock_connection_is_killed_stops_and_a_standby_takes_over(
    postgres_url: str,
) -> None:
    lock = "test.scheduler.takeover"
    runs: list[tuple[str, float]] = []
    first, second = Node(postgres_url, "first", runs), Node(postgres_url, "second", runs)
    admin = create_engine(postgres_url)
    before = lost_count()
    try:
        first.lead(lock, only_once=True)
        await wait_until(lambda: first.count >= 3, "the first scheduler's jobs running")
        second.lead(lock)
        async with admin.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            pid = await holder(conn, lock)
            assert pid is not None
            await conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

            await wait_until(lambda: not first.scheduler.running, "the first scheduler stopping")
            stopped_at = first.count
            await wait_until(lambda: second.count >= 3, "the standby's jobs running")
            assert second.scheduler.running
            assert await holder(conn, lock) not in (None, pid)

        assert first.count == stopped_at  # its job run counter stopped increasing
        assert not first.scheduler.running
        last_first = max(at for name, at in runs if name == "first")
        first_second = min(at for name, at in runs if name == "second")
        assert last_first < first_second  # never both at once
        assert lost_count() == before + 1
    finally:
        await first.close()
        await second.close()
        await admin.dispose()


async def test_a_lost_lock_is_taken_again_and_the_jobs_resume_only_then(
    postgres_url: str,
) -> None:
    lock = "test.scheduler.again"
    runs: list[tuple[str, float]] = []
    node = Node(postgres_url, "node", runs)
    admin = create_engine(postgres_url)
    before = lost_count()
    try:
        node.lead(lock)
        await wait_until(lambda: node.count >= 3, "the jobs running")
        async with admin.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            pid = await holder(conn, lock)
            assert pid is not None
            # kill the lock's connection and, in the same statement, queue for the lock:
            # this connection holds it the moment the killed one is gone
            await conn.execute(
                sa.text("SELECT pg_terminate_backend(:pid), pg_advisory_lock(:key)"),
                {"pid": pid, **lock_params(lock)},
            )
            await wait_until(lambda: not node.scheduler.running, "the jobs stopping")
            stopped_at = node.count
            assert lost_count() == before + 1

            # standing by while another holds the lock: nothing runs
            await asyncio.sleep(3 * CHECK_SECONDS)
            assert node.count == stopped_at
            assert not node.scheduler.running

            await conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), lock_params(lock))
            await wait_until(lambda: node.count >= stopped_at + 3, "the jobs resuming")
            assert node.scheduler.running
            assert await holder(conn, lock) not in (None, pid)
    finally:
        await node.close()
        await admin.dispose()
