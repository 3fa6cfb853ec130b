"""The real ``orderhub scheduler`` process on PostgreSQL: when its lock connection is
killed it stops its jobs, says so, stands by, and leads again once it holds the lock."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from orderhub.adapters.persistence import create_engine
from orderhub.adapters.persistence.leadership import lock_key
from orderhub.entrypoints.scheduler import LEADERSHIP_LOCK

from .conftest import REDIS_URL
from .test_processes import Process, write_config

pytestmark = [pytest.mark.broker, pytest.mark.postgres]


@pytest.fixture
def scheduler_processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        if process.proc.poll() is None:
            process.proc.kill()
            process.proc.wait()


async def kill_lock_holder(url: str) -> list[bool]:
    key = lock_key(LEADERSHIP_LOCK)
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            killed = await conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"
                    " AND granted AND objsubid = 1 AND classid = :classid AND objid = :objid"
                    " AND database = (SELECT oid FROM pg_database"
                    " WHERE datname = current_database())"
                ),
                {"classid": (key >> 32) & 0xFFFFFFFF, "objid": key & 0xFFFFFFFF},
            )
            return list(killed.scalars())
    finally:
        await engine.dispose()


def test_a_scheduler_whose_lock_connection_is_killed_stops_and_leads_again(
    postgres_url: str, tmp_path: Path, scheduler_processes: list[Process]
) -> None:
    config = write_config(tmp_path, kind="redis", url=REDIS_URL, prefix=f"relead-{os.getpid()}")
    sqlite_line = f'url = "sqlite+aiosqlite:///{tmp_path / "hub.db"}"'
    text = config.read_text().replace(sqlite_line, f'url = "{postgres_url}"')
    config.write_text(text.replace("[scheduler]\n", "[scheduler]\nleadership_check_seconds = 1\n"))
    scheduler = Process(["scheduler", "-c", str(config)], tmp_path / "scheduler.log")
    scheduler_processes.append(scheduler)

    def count(event: str) -> int:
        return sum(e.get("event") == event for e in scheduler.events())

    scheduler.wait_for(lambda: count("scheduler.started") == 1, "the scheduler leading")
    assert asyncio.run(kill_lock_holder(postgres_url)) == [True]
    scheduler.wait_for(lambda: count("scheduler.started") == 2, "the scheduler leading again")
    assert scheduler.stop() == 0

    events = [e for e in scheduler.events() if str(e.get("event", "")).startswith("scheduler.")]
    names = [e["event"] for e in events]
    lost = names.index("scheduler.leadership_lost")
    assert names[lost:] == [
        "scheduler.leadership_lost",
        "scheduler.stopped",  # the jobs stop before it stands by
        "scheduler.waiting_for_leadership",
        "scheduler.leader",
        "scheduler.started",
        "scheduler.stopped",  # on SIGTERM
    ]
    assert events[lost]["reason"] == "error"
    assert names[:lost] == [
        "scheduler.waiting_for_leadership",
        "scheduler.leader",
        "scheduler.started",
    ]
