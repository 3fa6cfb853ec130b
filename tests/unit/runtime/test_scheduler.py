"""The scheduler: sweep, account jobs with their JobContext, isolation of failures, jitter."""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta

import pytest
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

from orderhub.application.ports import ChannelCommand, CommandKind
from orderhub.channels.health import LocalAccountHealth
from orderhub.channels.spi import (
    AccountServices,
    IntakeMessage,
    JobContext,
    ScheduledJob,
    TransientChannelError,
)
from orderhub.config import SchedulerSettings
from orderhub.entrypoints.scheduler import SWEEP_JOB, Periodic, Scheduler
from orderhub.testing.fakes import FakeDatabase, FixedClock, RecordingQueue

from .support import ACCOUNT, CHANNEL, Script, make_hub, put_message

SETTINGS = SchedulerSettings(
    sweep_interval_seconds=0.05, grace_seconds=30, first_run_jitter_seconds=0.01
)


def periodic_named(scheduler: Scheduler, name: str) -> Periodic:
    return next(p for p in scheduler.periodics() if p.name == name)


async def test_jobs_submit_to_the_inbox_as_polled_messages_deduplicated() -> None:
    results: list[bool] = []

    async def poll(ctx: JobContext) -> None:
        for key in ("order-1", "order-2", "order-1"):
            results.append(
                await ctx.submit(IntakeMessage(dedupe_key=key, body=b"order:" + key.encode()))
            )

    db = FakeDatabase()
    queue = RecordingQueue()
    hub = make_hub(
        queue, db=db, script=Script(jobs=[ScheduledJob(name="poll", interval_seconds=60, run=poll)])
    )
    scheduler = Scheduler(hub, SETTINGS)

    assert await scheduler.run_once(periodic_named(scheduler, "poll"))

    assert results == [True, True, False]
    stored = sorted(db.inbox.values(), key=lambda m: m.dedupe_key)
    assert [m.source for m in stored] == ["polling", "polling"]
    assert [m.dedupe_key for m in stored] == [
        f"{CHANNEL}:{ACCOUNT}:key:order-1",
        f"{CHANNEL}:{ACCOUNT}:key:order-2",
    ]
    assert sorted(queue.messages) == sorted(m.id for m in stored)


async def test_job_cursors_persist_between_runs_through_units_of_work() -> None:
    seen: list[str | None] = []

    async def reconcile(ctx: JobContext) -> None:
        current = await ctx.cursors.get(CHANNEL, ACCOUNT, "since")
        seen.append(current)
        await ctx.cursors.set(CHANNEL, ACCOUNT, "since", str(int(current or "0") + 1))

    db = FakeDatabase()
    hub = make_hub(
        RecordingQueue(),
        db=db,
        script=Script(jobs=[ScheduledJob(name="reconcile", interval_seconds=60, run=reconcile)]),
    )
    scheduler = Scheduler(hub, SETTINGS)
    job = periodic_named(scheduler, "reconcile")

    await scheduler.run_once(job)
    await scheduler.run_once(job)

    assert seen == [None, "1"]
    assert db.cursors[(CHANNEL, ACCOUNT, "since")] == "2"


async def test_the_context_names_the_account_and_the_hub_clock() -> None:
    contexts: list[JobContext] = []

    async def look(ctx: JobContext) -> None:
        contexts.append(ctx)

    hub = make_hub(
        RecordingQueue(),
        script=Script(jobs=[ScheduledJob(name="look", interval_seconds=1, run=look)]),
    )
    scheduler = Scheduler(hub, SETTINGS)
    await scheduler.run_once(periodic_named(scheduler, "look"))

    (ctx,) = contexts
    assert (ctx.account.channel, ctx.account.name) == (CHANNEL, ACCOUNT)
    assert ctx.clock is hub.clock


async def test_a_failing_job_is_logged_and_the_others_keep_running() -> None:
    runs = {"broken": 0, "fine": 0}

    async def broken(_ctx: JobContext) -> None:
        runs["broken"] += 1
        raise RuntimeError("channel said no")

    async def fine(_ctx: JobContext) -> None:
        runs["fine"] += 1

    jobs = [
        ScheduledJob(name="broken", interval_seconds=0.02, run=broken),
        ScheduledJob(name="fine", interval_seconds=0.02, run=fine),
    ]
    hub = make_hub(RecordingQueue(), script=Script(jobs=jobs))
    scheduler = Scheduler(hub, SETTINGS, sweep=False)

    with capture_logs(processors=[merge_contextvars]) as logs:
        await scheduler.start()
        try:
            await asyncio.sleep(0.2)
        finally:
            await scheduler.stop()

    assert runs["broken"] >= 3  # it keeps being scheduled after failing
    assert runs["fine"] >= 3
    failures = [e for e in logs if e["event"] == "job.failed"]
    assert failures
    assert failures[0]["job"] == "broken"
    assert failures[0]["channel"] == CHANNEL
    assert failures[0]["log_level"] == "error"
    assert not scheduler.running


async def test_the_sweep_requeues_what_a_crash_left_behind() -> None:
    db = FakeDatabase()
    queue = RecordingQueue()
    hub = make_hub(queue, db=db)
    put_message(db, "lost-msg", "A-1")
    old = hub.clock.now() - timedelta(minutes=5)
    db.commands["lost-cmd"] = ChannelCommand(
        id="lost-cmd",
        order_id="o-1",
        channel=CHANNEL,
        account=ACCOUNT,
        kind=CommandKind.ACCEPT,
        payload={},
        created_at=old,
    )
    scheduler = Scheduler(hub, SETTINGS)

    await scheduler.run_once(periodic_named(scheduler, SWEEP_JOB))

    assert queue.commands == [("lost-cmd", 0)]
    assert queue.messages == ["lost-msg"]


async def test_sweep_runs_repeatedly_once_started() -> None:
    queue = RecordingQueue()
    db = FakeDatabase()
    clock = FixedClock()

    class Ticking(FixedClock):
        """Each sweep sees the message as queued long ago: it takes it every time."""

        def now(self) -> datetime:
            clock.advance(SETTINGS.grace_seconds + 1)
            return clock.now()

    hub = make_hub(queue, db=db, clock=Ticking())
    put_message(db, "lost-msg", "A-1")
    scheduler = Scheduler(hub, SETTINGS)

    await scheduler.start()
    try:
        await asyncio.sleep(0.2)
    finally:
        await scheduler.stop()

    assert queue.messages.count("lost-msg") >= 2


@pytest.mark.parametrize(("interval", "ceiling"), [(60.0, 10.0), (4.0, 4.0)])
def test_first_runs_are_jittered_within_the_interval_and_the_jitter_setting(
    interval: float, ceiling: float
) -> None:
    hub = make_hub(RecordingQueue())
    scheduler = Scheduler(
        hub,
        SchedulerSettings(first_run_jitter_seconds=10.0),
        rng=random.Random(5),
    )

    async def nothing() -> None:
        return None

    job = Periodic(name="j", channel="c", account="a", interval_seconds=interval, run=nothing)
    delays = [scheduler.first_delay(job) for _ in range(200)]

    assert all(0 <= d <= ceiling for d in delays)
    assert len(set(delays)) > 100  # spread, not one fixed offset


async def test_each_jobs_outcome_is_noted_as_the_accounts_health() -> None:
    calls = {"n": 0}

    async def flaky(_ctx: JobContext) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise TransientChannelError("Octopia answered 503")

    hub = make_hub(
        RecordingQueue(),
        script=Script(jobs=[ScheduledJob(name="poll", interval_seconds=60, run=flaky)]),
    )
    account = hub.channels.account(CHANNEL, ACCOUNT)
    health = LocalAccountHealth()
    account.bind(AccountServices(health=health))
    job = periodic_named(Scheduler(hub, SETTINGS, sweep=False), "poll")
    with pytest.raises(TransientChannelError):
        await job.run()
    assert health.last[(CHANNEL, ACCOUNT, "job poll")] == (
        False,
        "TransientChannelError: Octopia answered 503",
    )
    await job.run()
    assert health.last[(CHANNEL, ACCOUNT, "job poll")] == (True, "")
