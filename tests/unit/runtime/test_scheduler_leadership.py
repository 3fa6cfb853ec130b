"""The scheduler runs its jobs while, and only while, it leads: with a fake election whose
terms the tests grant and take away. Conditions are awaited with generous deadlines."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from structlog.testing import capture_logs

from orderhub.adapters.persistence.leadership import Term, sole_leadership
from orderhub.channels.spi import JobContext, ScheduledJob
from orderhub.config import SchedulerSettings
from orderhub.entrypoints.scheduler import Scheduler
from orderhub.metrics import REGISTRY
from orderhub.testing.fakes import RecordingQueue

from .support import Script, make_hub

CHECK_SECONDS = 0.05
WAIT_SECONDS = 10.0


class FakeElection:
    """Grants a term each time :meth:`grant` is called; records every term."""

    def __init__(self) -> None:
        self.terms: list[Term] = []
        self.standing_by = 0  # elections currently waiting
        self._grants = asyncio.Semaphore(0)

    def grant(self) -> None:
        self._grants.release()

    @contextlib.asynccontextmanager
    async def __call__(self, stop: asyncio.Event) -> AsyncIterator[Term | None]:
        self.standing_by += 1
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._grants.acquire(), CHECK_SECONDS)
                    break
        finally:
            self.standing_by -= 1
        if stop.is_set():
            yield None
            return
        term = Term()
        self.terms.append(term)
        try:
            yield term
        finally:
            term.end()


class Counting:
    def __init__(self) -> None:
        self.runs = 0
        self.on_run: Callable[[int], None] = lambda _runs: None

    async def run(self, _ctx: JobContext) -> None:
        self.runs += 1
        self.on_run(self.runs)


async def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


def scheduler_with(job: Counting, *, check_seconds: float = CHECK_SECONDS) -> Scheduler:
    script = Script(jobs=[ScheduledJob(name="poll", interval_seconds=0.01, run=job.run)])
    settings = SchedulerSettings(
        first_run_jitter_seconds=0.0, leadership_check_seconds=check_seconds
    )
    return Scheduler(make_hub(RecordingQueue(), script=script), settings, sweep=False)


def lost_count(reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "orderhub_scheduler_leadership_lost_total", {"reason": reason}
    )
    return value or 0.0


async def test_jobs_run_only_while_leading_and_resume_after_a_new_term() -> None:
    job = Counting()
    scheduler = scheduler_with(job)
    election, stop = FakeElection(), asyncio.Event()
    before = lost_count("error")

    with capture_logs() as logs:
        leading = asyncio.create_task(scheduler.lead(election, stop))
        await wait_until(lambda: election.standing_by == 1, "standing by")
        assert job.runs == 0
        assert not scheduler.running

        election.grant()
        await wait_until(lambda: job.runs >= 3, "jobs running under the first term")
        election.terms[0].lose("error", "connection killed")
        await wait_until(lambda: not scheduler.running, "jobs stopped")
        runs_when_lost = job.runs
        await wait_until(lambda: election.standing_by == 1, "standing by again")
        await asyncio.sleep(10 * CHECK_SECONDS)  # standing by: nothing may run meanwhile
        assert job.runs == runs_when_lost
        assert not scheduler.running

        election.grant()
        await wait_until(lambda: job.runs >= runs_when_lost + 3, "jobs resumed under a new term")
        assert scheduler.running
        stop.set()
        await asyncio.wait_for(leading, WAIT_SECONDS)

    assert not scheduler.running
    assert len(election.terms) == 2
    assert not any(term.held for term in election.terms)
    assert lost_count("error") == before + 1
    (lost,) = [e for e in logs if e["event"] == "scheduler.leadership_lost"]
    assert (lost["reason"], lost["detail"], lost["log_level"]) == (
        "error",
        "connection killed",
        "error",
    )
    events = [e["event"] for e in logs if e["event"].startswith("scheduler.")]
    assert events.count("scheduler.started") == 2
    assert events.count("scheduler.stopped") == 2


async def test_a_job_never_runs_again_once_the_term_is_lost() -> None:
    job = Counting()
    scheduler = scheduler_with(job)
    term = Term()
    job.on_run = lambda runs: term.lose("not_held") if runs == 3 else None

    await scheduler.start(term)
    try:  # nobody stops the job: its own loop sees the term lost and ends
        await asyncio.wait_for(asyncio.gather(*scheduler._tasks), WAIT_SECONDS)
    finally:
        await scheduler.stop()

    assert job.runs == 3


async def test_a_new_leader_waits_one_check_before_starting_its_jobs() -> None:
    job = Counting()
    scheduler = scheduler_with(job, check_seconds=WAIT_SECONDS)
    election, stop = FakeElection(), asyncio.Event()
    leading = asyncio.create_task(scheduler.lead(election, stop))
    try:
        election.grant()
        await wait_until(lambda: bool(election.terms), "a term")
        election.terms[0].lose("timeout")  # lost before the check was over: never started
        await wait_until(lambda: election.standing_by == 1, "standing by again")
        assert job.runs == 0
        assert not scheduler.running
    finally:
        stop.set()
        await asyncio.wait_for(leading, WAIT_SECONDS)


async def test_the_only_process_there_is_starts_its_jobs_at_once() -> None:
    job = Counting()
    scheduler = scheduler_with(job, check_seconds=6 * WAIT_SECONDS)  # no wait for a rival
    stop = asyncio.Event()
    leading = asyncio.create_task(scheduler.lead(sole_leadership, stop))
    try:
        await wait_until(lambda: job.runs >= 1, "the jobs running")
    finally:
        stop.set()
        await asyncio.wait_for(leading, WAIT_SECONDS)
    assert not scheduler.running


async def test_stopping_a_standby_returns_without_running_anything() -> None:
    job = Counting()
    scheduler = scheduler_with(job)
    election, stop = FakeElection(), asyncio.Event()
    leading = asyncio.create_task(scheduler.lead(election, stop))
    await wait_until(lambda: election.standing_by == 1, "standing by")

    stop.set()
    await asyncio.wait_for(leading, WAIT_SECONDS)

    assert election.terms == []
    assert job.runs == 0


async def test_stopping_a_leader_stops_its_jobs_and_lets_go_without_a_loss() -> None:
    job = Counting()
    scheduler = scheduler_with(job)
    election, stop = FakeElection(), asyncio.Event()
    before = {reason: lost_count(reason) for reason in ("error", "timeout", "not_held")}
    leading = asyncio.create_task(scheduler.lead(election, stop))
    election.grant()
    await wait_until(lambda: job.runs >= 1, "jobs running")

    stop.set()
    await asyncio.wait_for(leading, WAIT_SECONDS)

    assert not scheduler.running
    (term,) = election.terms
    assert not term.held
    assert term.reason is None
    assert {reason: lost_count(reason) for reason in before} == before


async def test_stopping_is_bounded_even_when_a_job_ignores_its_cancellation() -> None:
    release = asyncio.Event()
    runs = 0

    async def stubborn(_ctx: JobContext) -> None:
        nonlocal runs
        runs += 1
        try:
            await asyncio.sleep(WAIT_SECONDS)
        except asyncio.CancelledError:
            if runs > 1:
                raise
            await asyncio.wait_for(release.wait(), WAIT_SECONDS)  # swallowed, the first time

    script = Script(jobs=[ScheduledJob(name="stubborn", interval_seconds=0.01, run=stubborn)])
    settings = SchedulerSettings(first_run_jitter_seconds=0.0, leadership_check_seconds=0.05)
    scheduler = Scheduler(make_hub(RecordingQueue(), script=script), settings, sweep=False)
    await scheduler.start()
    await wait_until(lambda: runs == 1, "the job running")
    (task,) = scheduler._tasks

    with capture_logs() as logs:
        await asyncio.wait_for(scheduler.stop(), WAIT_SECONDS)

    assert [e["jobs"] for e in logs if e["event"] == "scheduler.jobs_not_stopped"] == [
        [task.get_name()]
    ]
    release.set()
    done, _ = await asyncio.wait({task}, timeout=WAIT_SECONDS)
    task.cancel()
    assert done == {task}  # its loop ended instead of running the job again
    assert runs == 1
