"""The dramatiq adapter on a StubBroker: wiring, delays, retries, lost enqueues, metrics."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import dramatiq
import pytest
from dramatiq import Worker
from dramatiq.brokers.stub import StubBroker
from dramatiq.errors import ConnectionClosed
from dramatiq.middleware import AsyncIO, Middleware, Retries
from structlog.testing import capture_logs

from orderhub.adapters.clock import SystemClock
from orderhub.adapters.queue import dramatiq_queue
from orderhub.adapters.queue.dramatiq_queue import (
    DISPATCH_ACTOR,
    INBOX_ACTOR,
    DramatiqQueue,
    current_hub,
    declare_actors,
    middleware_stack,
    set_hub,
)
from orderhub.application.hub import Hub, RetryPolicy
from orderhub.application.ports import CommandState, InboxState
from orderhub.channels.spi import CommandKind, TransientChannelError
from orderhub.domain.errors import ConcurrencyConflict
from orderhub.metrics import REGISTRY
from orderhub.testing.fakes import FakeDatabase

from .support import CHANNEL, Script, make_hub, put_message

FAST = RetryPolicy(base_seconds=0.01, max_seconds=0.05, max_attempts=3)


@dataclass
class Rig:
    broker: StubBroker
    queue: DramatiqQueue
    hub: Hub
    db: FakeDatabase
    script: Script
    worker: Worker

    def run(self) -> None:
        """Let the worker drain every queue (delayed messages included)."""
        for _ in range(3):  # a job may enqueue more (follow-ups, retries)
            assert self.queue.flush(timeout=10), "the publisher did not hand everything over"
            for name in (f"orderhub.{q}" for q in ("commands", "inbox")):
                self.broker.join(name, timeout=10_000, fail_fast=False)
            self.worker.join()


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture
def rig(script: Script) -> Iterator[Rig]:
    broker = StubBroker(middleware=middleware_stack(retry=FAST))
    broker.emit_after("process_boot")
    queue = DramatiqQueue(broker, retry=FAST)
    db = FakeDatabase()
    hub = make_hub(queue, script=script, db=db, retry=FAST, clock=SystemClock())
    set_hub(hub)
    worker = Worker(broker, worker_threads=2, worker_timeout=50)
    worker.start()
    try:
        yield Rig(broker=broker, queue=queue, hub=hub, db=db, script=script, worker=worker)
    finally:
        worker.stop()
        queue.close()
        set_hub(None)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_actors_are_declared_on_their_own_queues_with_the_policy_backoff() -> None:
    broker = StubBroker(middleware=middleware_stack(retry=FAST))

    actors = declare_actors(broker, queue_prefix="acme", retry=FAST)

    assert actors.dispatch.actor_name == DISPATCH_ACTOR
    assert actors.dispatch.queue_name == "acme.commands"
    assert actors.inbox.actor_name == INBOX_ACTOR
    assert actors.inbox.queue_name == "acme.inbox"
    assert actors.inbox.options["max_retries"] == FAST.max_attempts
    assert actors.inbox.options["min_backoff"] == 10
    assert actors.inbox.options["max_backoff"] == 50
    assert actors.dispatch.options["time_limit"] == int(FAST.lease_seconds * 1000)
    # declaring again (API process and worker share a broker) returns the same actors
    assert declare_actors(broker, queue_prefix="acme").dispatch is actors.dispatch


def test_middleware_runs_async_actors_and_leaves_prometheus_out() -> None:
    stack = middleware_stack(retry=FAST)
    names = [type(m).__name__ for m in stack]

    assert "Prometheus" not in names
    assert isinstance(stack[-1], AsyncIO)
    retries = next(m for m in stack if isinstance(m, Retries))
    assert (retries.min_backoff, retries.max_backoff) == (10, 50)


def test_a_worker_without_a_hub_fails_loudly() -> None:
    set_hub(None)

    with pytest.raises(RuntimeError, match="no Hub in this process"):
        current_hub()


def test_inbox_message_runs_once_and_its_follow_up_is_dispatched_once(rig: Rig) -> None:
    put_message(rig.db, "msg-1", "A-1")
    before = sample(
        "orderhub_commands_dispatched_total",
        channel=CHANNEL,
        kind="acknowledge",
        outcome="succeeded",
    )

    rig.queue.enqueue_inbox("msg-1")
    rig.run()

    assert rig.script.snapshot_calls == [b"order:A-1"]
    assert rig.db.inbox["msg-1"].state is InboxState.PROCESSED
    (command,) = rig.db.commands.values()
    assert command.state is CommandState.SUCCEEDED
    assert rig.script.executed == [(command.id, CommandKind.ACKNOWLEDGE)]
    after = sample(
        "orderhub_commands_dispatched_total",
        channel=CHANNEL,
        kind="acknowledge",
        outcome="succeeded",
    )
    assert after == before + 1


def test_a_delayed_command_goes_to_the_delay_queue_with_its_eta() -> None:
    broker = StubBroker(middleware=middleware_stack(retry=FAST))
    queue = DramatiqQueue(broker, retry=FAST)

    now_ms = time.time() * 1000
    queue.enqueue_command("c-1", delay_seconds=30)
    queue.enqueue_command("c-2")
    assert queue.flush(timeout=10)

    (delayed,) = broker.queues["orderhub.commands.DQ"].queue
    message = dramatiq.Message.decode(delayed)
    assert message.args == ("c-1",)
    assert now_ms + 29_000 <= message.options["eta"] <= now_ms + 31_000
    (immediate,) = broker.queues["orderhub.commands"].queue
    assert dramatiq.Message.decode(immediate).args == ("c-2",)


@pytest.mark.parametrize(
    "script", [Script(fail_snapshots=[TransientChannelError("429", retry_after=0.2)])]
)
def test_transient_error_retries_the_inbox_message_after_retry_after(rig: Rig) -> None:
    put_message(rig.db, "msg-1", "A-1")

    started = time.monotonic()
    rig.queue.enqueue_inbox("msg-1")
    rig.run()

    assert len(rig.script.snapshot_calls) == 2
    assert time.monotonic() - started >= 0.05  # Retry-After (capped at max 0.05 s) waited
    assert rig.db.inbox["msg-1"].state is InboxState.PROCESSED
    assert rig.broker.dead_letters == []  # the service paced it: no broker-level retry


@pytest.mark.parametrize(
    "script", [Script(fail_snapshots=[TransientChannelError(f"down {n}") for n in range(10)])]
)
def test_retries_are_bounded_and_the_message_ends_failed_for_an_operator(rig: Rig) -> None:
    put_message(rig.db, "msg-1", "A-1")

    rig.queue.enqueue_inbox("msg-1")
    rig.run()

    assert len(rig.script.snapshot_calls) == FAST.max_attempts  # capped where it is claimed
    message = rig.db.inbox["msg-1"]
    assert message.state is InboxState.FAILED  # listed and retriable, never retried again
    assert message.last_error == "transient errors exhausted: down 2"
    assert rig.broker.dead_letters == []


class DownBroker(StubBroker):
    def enqueue(self, message: Any, *, delay: int | None = None) -> Any:
        raise ConnectionClosed(OSError("connection refused"))  # type: ignore[no-untyped-call]


def test_a_failed_enqueue_is_logged_and_counted_never_raised() -> None:
    queue = DramatiqQueue(DownBroker(middleware=middleware_stack()))
    before = sample("orderhub_enqueue_failures_total", what="command")

    with capture_logs() as logs:
        queue.enqueue_command("c-9", delay_seconds=1)
        queue.enqueue_inbox("m-9")
        assert queue.flush(timeout=10)

    failed = [e for e in logs if e["event"] == "queue.enqueue_failed"]
    assert [(e["what"], e["id"]) for e in failed] == [("command", "c-9"), ("inbox", "m-9")]
    assert all(e["log_level"] == "error" for e in failed)
    assert sample("orderhub_enqueue_failures_total", what="command") == before + 1


def test_the_hub_holder_is_what_the_actors_use(rig: Rig) -> None:
    assert current_hub() is rig.hub
    assert dramatiq_queue._hub is rig.hub


@pytest.mark.parametrize(
    "script", [Script(fail_snapshots=[ConcurrencyConflict("order changed since it was read")])]
)
def test_a_write_conflict_is_retried_quietly(rig: Rig) -> None:
    put_message(rig.db, "msg-1", "A-1")

    with capture_logs() as logs:
        rig.queue.enqueue_inbox("msg-1")
        rig.run()

    assert len(rig.script.snapshot_calls) == 2
    assert rig.db.inbox["msg-1"].state is InboxState.PROCESSED
    assert [e["outcome"] for e in logs if e["event"] == "inbox.end"] == ["retry", "processed"]
    assert not any(e["event"] == "inbox.error" for e in logs)


class SlowCommandsBroker(StubBroker):
    """Publishing a command waits until released; inbox messages go through."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.entered = threading.Event()
        self.release = threading.Event()

    def enqueue(self, message: Any, *, delay: int | None = None) -> Any:
        if message.queue_name.startswith("orderhub.commands"):
            self.entered.set()
            assert self.release.wait(30), "never released"
        return super().enqueue(message, delay=delay)


class Finished(Middleware):
    def __init__(self) -> None:
        self.inbox = threading.Event()

    def after_process_message(
        self, broker: dramatiq.Broker, message: Any, *, result: Any = None, exception: Any = None
    ) -> None:
        if message.actor_name == INBOX_ACTOR and exception is None:
            self.inbox.set()


def test_an_async_actor_is_not_held_up_by_a_broker_that_hangs(script: Script) -> None:
    finished = Finished()
    broker = SlowCommandsBroker(middleware=middleware_stack(retry=FAST, extra=[finished]))
    broker.emit_after("process_boot")
    queue = DramatiqQueue(broker, retry=FAST)
    db = FakeDatabase()
    hub = make_hub(queue, script=script, db=db, retry=FAST, clock=SystemClock())
    set_hub(hub)
    worker = Worker(broker, worker_threads=2, worker_timeout=50)
    worker.start()
    rig = Rig(broker=broker, queue=queue, hub=hub, db=db, script=script, worker=worker)
    try:
        put_message(db, "msg-1", "A-1")

        queue.enqueue_inbox("msg-1")

        # the actor (on the worker's event loop) is done while its follow-up hangs
        assert finished.inbox.wait(10), "the inbox actor waited for the broker"
        assert broker.entered.wait(10)
        assert rig.script.executed == []
        broker.release.set()
        rig.run()
        (command,) = db.commands.values()
        assert rig.script.executed == [(command.id, CommandKind.ACKNOWLEDGE)]
    finally:
        broker.release.set()
        worker.stop()
        queue.close()
        set_hub(None)
