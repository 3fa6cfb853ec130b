"""The scheduler: the sweeper plus every account's scheduled jobs (polling, reconciliation).

Run exactly one per deployment (``orderhub scheduler``), or let ``orderhub serve`` run it
in-process in embedded mode. Each job is its own asyncio task: its first run waits a random
time (so a restart does not fire every poll at once), then it runs, waits its interval and
runs again. A failing run is logged and counted; it stops neither that job nor the others.
Runs of one job never overlap (the interval is counted from the end of a run).

Only the leader runs jobs (:meth:`Scheduler.lead`): one scheduler per database holds the
leadership lock, any other stands by. A new leader waits one leadership check before
starting its jobs; a leader that loses the lock (connection killed, database restarted, a
check failing or timing out) stops every job within one check, logs and counts it, and
stands by again until it holds the lock anew."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from orderhub.adapters.persistence.leadership import Elect, Term, elector, sole_leadership
from orderhub.application.hub import Hub
from orderhub.application.services import intake, invoices, operations, retention
from orderhub.application.services.cursors import UnitOfWorkCursorStore
from orderhub.application.services.retention import RetentionPolicy
from orderhub.bootstrap import aclose, bootstrap, resources
from orderhub.channels.spi import ChannelAccount, IntakeMessage, JobContext
from orderhub.config import SchedulerSettings, Settings
from orderhub.logging import bound, get_logger
from orderhub.metrics import (
    RETENTION_PRUNED,
    SCHEDULED_JOBS,
    SCHEDULER_LEADERSHIP_LOST,
    SWEEP_REQUEUED,
)

__all__ = ["Periodic", "Scheduler", "run_scheduler"]

log = get_logger(__name__)

SWEEP_JOB = "sweep"
REFRESH_JOB = "refresh"
RETENTION_JOB = "retention"
INVOICES_JOB = "invoices"
#: Only one scheduler runs per database; a second one stands by until the first is gone.
LEADERSHIP_LOCK = "orderhub.scheduler"


@dataclass(frozen=True, kw_only=True, slots=True)
class Periodic:
    """One recurring task of the scheduler."""

    name: str
    channel: str  # "" for the hub's own jobs (the sweep)
    account: str
    interval_seconds: float
    run: Callable[[], Awaitable[None]]


class Scheduler:
    def __init__(
        self,
        hub: Hub,
        settings: SchedulerSettings,
        *,
        rng: random.Random | None = None,
        sweep: bool = True,
        retention: RetentionPolicy | None = None,
        invoice_interval_seconds: float = 60.0,
    ) -> None:
        self.hub = hub
        self.settings = settings
        self.rng = rng or random.Random()
        self.sweep = sweep  # the hub's own jobs: sweep, refresh, retention
        self.retention = retention or RetentionPolicy()
        self.invoice_interval_seconds = invoice_interval_seconds
        self._tasks: list[asyncio.Task[None]] = []
        self._active: asyncio.Event | None = None  # set while the current tasks may run

    def periodics(self) -> list[Periodic]:
        """The hub's own jobs (unless disabled) and every scheduled job of every account."""
        found: list[Periodic] = []
        if self.sweep:
            own = (
                (SWEEP_JOB, self.settings.sweep_interval_seconds, self._sweep),
                (REFRESH_JOB, self.settings.refresh_interval_seconds, self._refresh),
                (RETENTION_JOB, self.settings.retention_interval_seconds, self._prune),
                (INVOICES_JOB, self.invoice_interval_seconds, self._check_invoices),
            )
            found.extend(
                Periodic(name=name, channel="", account="", interval_seconds=every, run=run)
                for name, every, run in own
            )
        for account in self.hub.channels.accounts():
            context = self.job_context(account)
            for job in account.jobs():
                found.append(
                    Periodic(
                        name=job.name,
                        channel=account.channel,
                        account=account.name,
                        interval_seconds=job.interval_seconds,
                        run=_bind_run(job.run, context, account, job.name),
                    )
                )
        return found

    def job_context(self, account: ChannelAccount) -> JobContext:
        hub = self.hub

        async def submit(message: IntakeMessage) -> bool:
            stored = await intake.store_message(
                hub,
                channel=account.channel,
                account=account.name,
                body=message.body,
                headers=message.headers,
                source="polling",
                key=message.dedupe_key,
            )
            return not stored.duplicate

        return JobContext(
            account=account.config,
            cursors=UnitOfWorkCursorStore(hub.uow),
            clock=hub.clock,
            submit=submit,
        )

    async def _refresh(self) -> None:
        refreshed, failed = await operations.refresh_stale(
            self.hub,
            older_than_seconds=self.settings.refresh_after_seconds,
            limit=self.settings.refresh_limit,
        )
        if refreshed or failed:
            log.info("refresh.done", refreshed=refreshed, failed=failed)

    async def _check_invoices(self) -> None:
        done = await invoices.check_invoices(self.hub)
        if done.checked:
            log.info(
                "invoices.checked", checked=done.checked, decided=done.decided, failed=done.failed
            )

    async def _prune(self) -> None:
        pruned = await retention.prune(self.hub, self.retention)
        counts = {what: count for what, count in dataclasses.asdict(pruned).items() if count}
        for what, count in counts.items():
            RETENTION_PRUNED.labels(what).inc(count)
        if counts:
            log.info("retention.pruned", **counts)

    async def _sweep(self) -> None:
        result = await operations.sweep(
            self.hub,
            requeue_after_seconds=self.settings.grace_seconds,
            limit=self.settings.sweep_limit,
        )
        if result.commands:
            SWEEP_REQUEUED.labels("command").inc(result.commands)
        if result.messages:
            SWEEP_REQUEUED.labels("inbox").inc(result.messages)
        if result.commands or result.messages:
            log.info("sweep.requeued", commands=result.commands, messages=result.messages)

    # --- lifecycle -----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    async def lead(self, elect: Elect, stop: asyncio.Event) -> None:
        """Run the jobs while, and only while, this process leads, until ``stop`` is set.

        Stand by until ``elect`` yields a term; wait one leadership check (so that a
        leader that just lost the lock has stopped its jobs), unless no other process
        can have held it; run the jobs until the term
        is lost or ``stop`` is set; stop them; stand by again after a loss."""
        check = self.settings.leadership_check_seconds
        while not stop.is_set():
            log.info("scheduler.waiting_for_leadership")
            async with elect(stop) as term:
                if term is None:
                    return  # stopped while standing by
                log.info("scheduler.leader")
                try:
                    grace = check if term.contested else 0.0
                    if not await _any_set(stop, term.lost, within=grace):
                        await self.start(term)
                    while not await _any_set(stop, term.lost, within=check):
                        pass  # leading: every wait bounded, no busy loop
                    if term.reason is not None:
                        SCHEDULER_LEADERSHIP_LOST.labels(term.reason).inc()
                        log.error(
                            "scheduler.leadership_lost", reason=term.reason, detail=term.detail
                        )
                finally:
                    await self.stop()

    async def start(self, term: Term | None = None) -> None:
        """Start every job; with a ``term``, a job runs only while it is held."""
        if self._tasks:
            raise RuntimeError("the scheduler is already running")
        periodics = self.periodics()
        active = self._active = asyncio.Event()
        active.set()

        def may_run() -> bool:
            return active.is_set() and (term is None or term.held)

        self._tasks = [
            asyncio.create_task(self._loop(p, may_run), name=f"orderhub-job-{p.channel}-{p.name}")
            for p in periodics
        ]
        log.info(
            "scheduler.started",
            jobs=[f"{p.channel}/{p.account}/{p.name}" if p.channel else p.name for p in periodics],
        )

    async def stop(self) -> None:
        """Cancel every job and wait (one leadership check at most) for them to end."""
        tasks, self._tasks = self._tasks, []
        if self._active is not None:
            self._active.clear()
            self._active = None
        for task in tasks:
            task.cancel()
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=self.settings.leadership_check_seconds)
        if pending:  # a job that swallowed its cancellation: its loop ends at its next run
            log.error("scheduler.jobs_not_stopped", jobs=sorted(t.get_name() for t in pending))
        log.info("scheduler.stopped")

    def first_delay(self, periodic: Periodic) -> float:
        ceiling = min(periodic.interval_seconds, self.settings.first_run_jitter_seconds)
        return self.rng.uniform(0, ceiling)

    async def _loop(self, periodic: Periodic, may_run: Callable[[], bool]) -> None:
        await asyncio.sleep(self.first_delay(periodic))
        while may_run():
            await self.run_once(periodic)
            await asyncio.sleep(periodic.interval_seconds)

    async def run_once(self, periodic: Periodic) -> bool:
        """Run one job once; True when it succeeded. Never raises (but for cancellation)."""
        with bound(
            channel=periodic.channel or None, account=periodic.account or None, job=periodic.name
        ):
            started = time.perf_counter()
            try:
                await periodic.run()
            except asyncio.CancelledError:
                raise
            except Exception:
                SCHEDULED_JOBS.labels(periodic.channel, periodic.name, "error").inc()
                log.exception("job.failed", seconds=round(time.perf_counter() - started, 3))
                return False
            SCHEDULED_JOBS.labels(periodic.channel, periodic.name, "ok").inc()
            log.debug("job.done", seconds=round(time.perf_counter() - started, 3))
            return True


def _bind_run(
    run: Callable[[JobContext], Awaitable[None]],
    context: JobContext,
    account: ChannelAccount,
    name: str,
) -> Callable[[], Awaitable[None]]:
    """The job on its context; each run's outcome is noted as the account's health."""
    health = account.services.health

    async def bound_run() -> None:
        try:
            await run(context)
        except Exception as exc:
            await health.note(
                account.channel, account.name, f"job {name}", ok=False, detail=_said(exc)
            )
            raise
        await health.note(account.channel, account.name, f"job {name}", ok=True)

    return bound_run


def _said(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


async def _any_set(*events: asyncio.Event, within: float) -> bool:
    """Wait until one of ``events`` is set, at most ``within`` seconds; True when one is."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    return any(event.is_set() for event in events)


async def run_scheduler(settings: Settings) -> None:
    """``orderhub scheduler``: run until SIGINT or SIGTERM, then stop cleanly."""
    hub = bootstrap(settings)
    scheduler = Scheduler(
        hub,
        settings.scheduler,
        retention=settings.retention.policy(),
        invoice_interval_seconds=settings.invoices.job_interval_seconds,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    engine = resources(hub).engine
    elect: Elect = sole_leadership
    if engine is not None:
        check = settings.scheduler.leadership_check_seconds
        elect = elector(engine, LEADERSHIP_LOCK, check_seconds=check)
    try:
        await scheduler.lead(elect, stop)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await scheduler.stop()
        await aclose(hub)
