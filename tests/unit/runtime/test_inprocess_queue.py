"""The embedded queue: order, delays, concurrency, retries, lifecycle, and the real jobs."""

from __future__ import annotations

import asyncio
import time

import pytest
from structlog.testing import capture_logs

from orderhub.adapters.clock import SystemClock
from orderhub.adapters.queue.inprocess import InProcessQueue, Job, Kind, Runner
from orderhub.application.hub import Hub, RetryPolicy
from orderhub.application.ports import CommandState, InboxState
from orderhub.channels.spi import CommandKind, TransientChannelError
from orderhub.testing.fakes import FakeDatabase

from .support import Script, make_hub, put_message

FAST = RetryPolicy(base_seconds=0.01, max_seconds=0.05, max_attempts=3)


class Recorder:
    """Runners that record (kind, id, monotonic time) and can be told to fail."""

    def __init__(self, *, hold: float = 0.0) -> None:
        self.calls: list[tuple[str, str, float]] = []
        self.failures: dict[str, list[Exception]] = {}
        self.hold = hold
        self.running = 0
        self.max_running = 0

    def runners(self) -> dict[Kind, Runner]:
        return {"command": self._runner("command"), "inbox": self._runner("inbox")}

    def _runner(self, kind: str) -> Runner:
        async def run(_hub: Hub, ident: str) -> str:
            self.calls.append((kind, ident, time.monotonic()))
            self.running += 1
            self.max_running = max(self.max_running, self.running)
            try:
                if self.hold:
                    await asyncio.sleep(self.hold)
                if self.failures.get(ident):
                    raise self.failures[ident].pop(0)
            finally:
                self.running -= 1
            return "ok"

        return run

    def ids(self) -> list[str]:
        return [ident for _, ident, _ in self.calls]


def queue_with(recorder: Recorder, *, concurrency: int = 1) -> InProcessQueue:
    return InProcessQueue(concurrency=concurrency, retry=FAST, runners=recorder.runners())


async def run_until_idle(queue: InProcessQueue) -> None:
    async with asyncio.timeout(5):
        await queue.join()


@pytest.fixture
def hub() -> Hub:
    return make_hub(InProcessQueue())  # only handed to the recording runners


async def test_jobs_due_together_run_in_enqueue_order(hub: Hub) -> None:
    recorder = Recorder()
    queue = queue_with(recorder)
    await queue.start(hub)
    try:
        queue.enqueue_inbox("m1")
        queue.enqueue_command("c1")
        queue.enqueue_inbox("m2")
        queue.enqueue_command("c2")
        await run_until_idle(queue)
    finally:
        await queue.stop()

    assert recorder.calls[0][:2] == ("inbox", "m1")
    assert recorder.ids() == ["m1", "c1", "m2", "c2"]


async def test_jobs_enqueued_before_start_wait_for_it(hub: Hub) -> None:
    recorder = Recorder()
    queue = queue_with(recorder)
    queue.enqueue_command("early")
    await asyncio.sleep(0.02)
    assert recorder.calls == []
    assert queue.pending() == [Job("command", "early")]

    await queue.start(hub)
    try:
        await run_until_idle(queue)
    finally:
        await queue.stop()

    assert recorder.ids() == ["early"]


async def test_delayed_commands_run_after_their_delay_in_due_order(hub: Hub) -> None:
    recorder = Recorder()
    queue = queue_with(recorder, concurrency=2)
    await queue.start(hub)
    try:
        started = time.monotonic()
        queue.enqueue_command("late", delay_seconds=0.3)
        queue.enqueue_command("sooner", delay_seconds=0.15)
        queue.enqueue_command("now")
        await run_until_idle(queue)
    finally:
        await queue.stop()

    assert recorder.ids() == ["now", "sooner", "late"]
    at = {ident: t - started for _, ident, t in recorder.calls}
    assert at["now"] < 0.1
    assert 0.15 <= at["sooner"] < 0.3
    assert at["late"] >= 0.3


async def test_at_most_concurrency_jobs_run_at_once(hub: Hub) -> None:
    recorder = Recorder(hold=0.05)
    queue = queue_with(recorder, concurrency=3)
    await queue.start(hub)
    try:
        for n in range(9):
            queue.enqueue_inbox(f"m{n}")
        await run_until_idle(queue)
    finally:
        await queue.stop()

    assert len(recorder.calls) == 9
    assert recorder.max_running == 3


async def test_transient_error_is_retried_with_backoff_honouring_retry_after(hub: Hub) -> None:
    recorder = Recorder()
    recorder.failures["m1"] = [TransientChannelError("429", status=429, retry_after=0.2)]
    queue = InProcessQueue(
        concurrency=1,
        retry=RetryPolicy(base_seconds=0.01, max_seconds=1.0, max_attempts=3),
        runners=recorder.runners(),
    )
    await queue.start(hub)
    try:
        with capture_logs() as logs:
            queue.enqueue_inbox("m1")
            await run_until_idle(queue)
    finally:
        await queue.stop()

    (first, _, t1), (second, _, t2) = recorder.calls
    assert (first, second) == ("inbox", "inbox")
    assert t2 - t1 >= 0.2  # Retry-After (0.2 s) beat the 0.01 s backoff
    retry = next(e for e in logs if e["event"] == "queue.retry")
    assert retry["id"] == "m1"
    assert retry["attempt"] == 1
    assert retry["log_level"] == "warning"


async def test_any_exception_is_logged_and_retried_until_max_attempts(hub: Hub) -> None:
    recorder = Recorder()
    recorder.failures["c1"] = [RuntimeError("database down")] * 5
    queue = queue_with(recorder)
    await queue.start(hub)
    try:
        with capture_logs() as logs:
            queue.enqueue_command("c1")
            queue.enqueue_command("c2")
            await run_until_idle(queue)
    finally:
        await queue.stop()

    assert recorder.ids().count("c1") == FAST.max_attempts
    assert "c2" in recorder.ids()  # one failing job does not block the others
    gave_up = [e for e in logs if e["event"] == "queue.gave_up"]
    assert len(gave_up) == 1
    assert gave_up[0]["id"] == "c1"
    assert "database down" in gave_up[0]["error"]


async def test_enqueue_from_another_thread_reaches_the_loop(hub: Hub) -> None:
    recorder = Recorder()
    queue = queue_with(recorder)
    await queue.start(hub)
    try:
        await asyncio.to_thread(queue.enqueue_inbox, "from-thread")
        await run_until_idle(queue)
    finally:
        await queue.stop()

    assert recorder.ids() == ["from-thread"]


async def test_stop_lets_running_jobs_finish_and_drops_queued_ones(hub: Hub) -> None:
    recorder = Recorder(hold=0.1)
    queue = queue_with(recorder)
    await queue.start(hub)
    queue.enqueue_inbox("running")
    queue.enqueue_command("delayed", delay_seconds=60)
    await asyncio.sleep(0.02)

    with capture_logs() as logs:
        await queue.stop()

    assert recorder.ids() == ["running"]
    assert recorder.running == 0  # it finished instead of being cancelled
    assert not queue.started
    assert queue.pending() == []
    stopped = next(e for e in logs if e["event"] == "queue.stopped")
    assert stopped["dropped"] == 1
    assert stopped["cancelled"] == 0


async def test_stop_cancels_a_job_that_outlives_the_grace_period(hub: Hub) -> None:
    recorder = Recorder(hold=10)
    queue = queue_with(recorder)
    await queue.start(hub)
    queue.enqueue_inbox("stuck")
    await asyncio.sleep(0.02)

    await queue.stop(grace_seconds=0.05)

    assert not queue.started
    assert recorder.running == 0


async def test_start_twice_is_refused(hub: Hub) -> None:
    queue = queue_with(Recorder())
    await queue.start(hub)
    try:
        with pytest.raises(RuntimeError, match="already started"):
            await queue.start(hub)
    finally:
        await queue.stop()


# --- with the real jobs and services over the in-memory fakes -------------------------


async def test_inbox_message_is_applied_and_its_follow_up_dispatched_once() -> None:
    db = FakeDatabase()
    script = Script()
    queue = InProcessQueue(concurrency=2, retry=FAST)
    hub = make_hub(queue, script=script, db=db)
    put_message(db, "msg-1", "A-100")
    await queue.start(hub)
    try:
        queue.enqueue_inbox("msg-1")
        await run_until_idle(queue)
    finally:
        await queue.stop()

    assert db.inbox["msg-1"].state is InboxState.PROCESSED
    (order,) = db.orders.values()
    assert order.channel_order_id == "A-100"
    (command,) = db.commands.values()
    assert command.kind is CommandKind.ACKNOWLEDGE
    assert command.state is CommandState.SUCCEEDED
    assert script.executed == [(command.id, CommandKind.ACKNOWLEDGE)]
    assert [e.type for e in db.feed][-1] == "command.succeeded"


async def test_transient_channel_error_while_processing_is_retried_until_applied() -> None:
    db = FakeDatabase()
    script = Script(fail_snapshots=[TransientChannelError("timeout"), TransientChannelError("5xx")])
    queue = InProcessQueue(concurrency=1, retry=FAST)
    hub = make_hub(queue, script=script, db=db, clock=SystemClock())
    put_message(db, "msg-1", "A-1")
    await queue.start(hub)
    try:
        queue.enqueue_inbox("msg-1")
        await run_until_idle(queue)
    finally:
        await queue.stop()

    assert len(script.snapshot_calls) == 3
    message = db.inbox["msg-1"]
    assert message.state is InboxState.PROCESSED
    assert message.attempts == 3  # two transient failures recorded, then the success
    assert message.last_error is None
    assert len(db.orders) == 1


async def test_channel_retry_of_a_command_comes_back_through_the_queue_delay() -> None:
    db = FakeDatabase()
    script = Script(fail_execute=[TransientChannelError("busy", status=503)])
    queue = InProcessQueue(concurrency=1, retry=FAST)
    hub = make_hub(queue, script=script, db=db, clock=SystemClock())
    put_message(db, "msg-1", "A-1")
    await queue.start(hub)
    try:
        queue.enqueue_inbox("msg-1")
        await run_until_idle(queue)
    finally:
        await queue.stop()

    (command,) = db.commands.values()
    assert len(script.executed) == 2
    assert command.state is CommandState.SUCCEEDED
    assert command.attempts == 2
