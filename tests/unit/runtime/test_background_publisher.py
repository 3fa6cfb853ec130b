"""Publishing off the caller's thread: ``enqueue_*`` never waits for the broker, the buffer
is bounded, and whatever cannot be published is given up (logged, counted) for the
sweeper. Brokers here block or fail on purpose; every blocked send is released at the
end of its test."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dramatiq
import pytest
import redis
from dramatiq import Worker
from dramatiq.brokers.stub import StubBroker
from dramatiq.errors import ConnectionClosed
from structlog.testing import capture_logs

from orderhub.adapters.queue.brokers import is_timeout
from orderhub.adapters.queue.dramatiq_queue import (
    DramatiqQueue,
    Outgoing,
    declare_actors,
    middleware_stack,
)
from orderhub.adapters.queue.publisher import (
    EXIT_SECONDS,
    BackgroundPublisher,
    Breaker,
    GiveUpReason,
)
from orderhub.config import load_settings
from orderhub.entrypoints.worker import HubLifecycle
from orderhub.metrics import REGISTRY

BOUND = 1.0
"""Seconds: generous for what takes microseconds (a put in a buffer)."""


class BlockingBroker(StubBroker):
    """A StubBroker whose enqueue waits until released (for a queue, or for all)."""

    def __init__(self, *, block: str | None = None) -> None:
        super().__init__(middleware=middleware_stack())
        self.block = block
        self.entered = threading.Event()
        self.release = threading.Event()
        self.threads: set[str] = set()

    def enqueue(self, message: Any, *, delay: int | None = None) -> Any:
        self.threads.add(threading.current_thread().name)
        if self.block is None or message.queue_name.startswith(self.block):
            self.entered.set()
            assert self.release.wait(30), "never released"
        return super().enqueue(message, delay=delay)


class FailingBroker(StubBroker):
    def __init__(self, error: Exception) -> None:
        super().__init__(middleware=middleware_stack())
        self.error = error
        self.calls = 0

    def enqueue(self, message: Any, *, delay: int | None = None) -> Any:
        self.calls += 1
        raise self.error


@pytest.fixture
def blocking() -> Iterator[BlockingBroker]:
    broker = BlockingBroker()
    try:
        yield broker
    finally:
        broker.release.set()


def given_up(what: str, reason: str) -> float:
    labels = {"what": what, "reason": reason}
    return REGISTRY.get_sample_value("orderhub_enqueue_given_up_total", labels) or 0.0


def failures(what: str) -> float:
    return REGISTRY.get_sample_value("orderhub_enqueue_failures_total", {"what": what}) or 0.0


def queued(broker: StubBroker, name: str) -> int:
    return len(broker.queues[name].queue) if name in broker.queues else 0


def test_enqueue_returns_at_once_while_the_broker_blocks_for_ever(
    blocking: BlockingBroker,
) -> None:
    queue = DramatiqQueue(blocking, buffer_size=5)
    before = given_up("inbox", "buffer_full")

    started = time.monotonic()
    queue.enqueue_inbox("m-0")
    assert time.monotonic() - started < BOUND
    assert blocking.entered.wait(10)  # the publisher thread is stuck on m-0
    with capture_logs() as logs:
        started = time.monotonic()
        for n in range(1, 21):
            queue.enqueue_inbox(f"m-{n}")
        queue.enqueue_command("c-1", delay_seconds=5)
        elapsed = time.monotonic() - started

    assert elapsed < BOUND
    full = [e["id"] for e in logs if e.get("reason") == "buffer_full"]
    assert full == [f"m-{n}" for n in range(6, 21)] + ["c-1"]  # 5 fit in the buffer
    assert given_up("inbox", "buffer_full") == before + 15
    assert queue.publisher.pending() == 6  # m-0 being sent, m-1..m-5 buffered
    assert not queue.flush(timeout=0.2)
    assert queued(blocking, "orderhub.inbox") == 0

    blocking.release.set()

    assert queue.flush(timeout=10)
    assert queued(blocking, "orderhub.inbox") == 6
    assert blocking.threads == {"orderhub-enqueue-0"}  # never the caller's thread
    queue.close()


async def test_an_async_caller_is_not_held_up_by_a_blocked_broker(
    blocking: BlockingBroker,
) -> None:
    queue = DramatiqQueue(blocking)

    started = time.monotonic()
    for n in range(100):
        queue.enqueue_command(f"c-{n}")
    elapsed = time.monotonic() - started

    assert elapsed < BOUND
    assert blocking.entered.wait(10)
    assert queue.publisher.pending() == 100
    blocking.release.set()
    assert queue.flush(timeout=10)
    assert queued(blocking, "orderhub.commands") == 100
    queue.close()


def test_flush_waits_for_what_was_handed_over_and_keeps_the_order(
    blocking: BlockingBroker,
) -> None:
    queue = DramatiqQueue(blocking)
    for n in range(3):
        queue.enqueue_inbox(f"m-{n}")

    assert not queue.flush(timeout=0.2)
    blocking.release.set()

    assert queue.flush(timeout=10)
    assert queue.publisher.pending() == 0
    sent = [dramatiq.Message.decode(m).args for m in blocking.queues["orderhub.inbox"].queue]
    assert sent == [("m-0",), ("m-1",), ("m-2",)]
    queue.close()


def test_close_is_bounded_and_gives_up_what_is_left(blocking: BlockingBroker) -> None:
    queue = DramatiqQueue(blocking)
    before = given_up("command", "closed")
    queue.enqueue_command("c-0")
    assert blocking.entered.wait(10)
    queue.enqueue_command("c-1")
    queue.enqueue_command("c-2")

    with capture_logs() as logs:
        started = time.monotonic()
        queue.close(timeout=0.3)
        elapsed = time.monotonic() - started
        queue.enqueue_command("c-3")  # after close: given up at once, never raised

    assert elapsed < 0.3 + EXIT_SECONDS + BOUND
    closed = [e["id"] for e in logs if e.get("reason") == "closed"]
    assert closed == ["c-1", "c-2", "c-3"]
    assert given_up("command", "closed") == before + 3
    assert any(e["event"] == "queue.publisher_stuck" for e in logs)  # c-0 still in send


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (redis.exceptions.TimeoutError("Timeout reading from socket"), "timeout"),
        (ConnectionClosed(TimeoutError("timed out")), "timeout"),  # type: ignore[no-untyped-call]
        (ConnectionClosed(OSError("connection refused")), "error"),  # type: ignore[no-untyped-call]
    ],
)
def test_a_failed_publish_is_logged_and_counted_by_reason(
    error: Exception, reason: GiveUpReason
) -> None:
    queue = DramatiqQueue(FailingBroker(error))
    before = (given_up("inbox", reason), failures("inbox"))

    with capture_logs() as logs:
        queue.enqueue_inbox("m-1")
        assert queue.flush(timeout=10)

    (event,) = [e for e in logs if e["event"] == "queue.enqueue_failed"]
    assert (event["what"], event["id"], event["reason"]) == ("inbox", "m-1", reason)
    assert event["log_level"] == "error"
    assert type(error).__name__ in event["error"]
    assert (given_up("inbox", reason), failures("inbox")) == (before[0] + 1, before[1] + 1)
    queue.close()


def test_a_broker_that_keeps_failing_is_given_up_at_once_for_a_while() -> None:
    broker = FailingBroker(ConnectionClosed(OSError("connection refused")))  # type: ignore[no-untyped-call]
    queue = DramatiqQueue(broker, breaker=Breaker(threshold=3, cooldown_seconds=600))

    with capture_logs() as logs:
        for n in range(10):
            queue.enqueue_inbox(f"m-{n}")
        assert queue.flush(timeout=10)

    assert broker.calls == 3  # then no more waiting on a broker that is down
    reasons = [e["reason"] for e in logs if e["event"] == "queue.enqueue_failed"]
    assert reasons == ["error"] * 3 + ["broker_unavailable"] * 7
    queue.close()


def test_the_breaker_lets_one_try_after_its_cooldown() -> None:
    breaker = Breaker(threshold=2, cooldown_seconds=5)

    breaker.failed(now=100.0)
    assert not breaker.is_open(100.0)  # one failure is not an outage
    breaker.failed(now=101.0)
    assert breaker.is_open(105.9)
    assert not breaker.is_open(106.0)  # a try goes through...
    breaker.failed(now=106.0)
    assert breaker.is_open(110.0)  # ...and reopens it when it fails
    breaker.succeeded()
    assert not breaker.is_open(110.0)


def test_a_delayed_command_keeps_its_due_time_while_it_waits() -> None:
    waiting = Outgoing("command", "c-1", handed_at=100.0, due_at=130.0)

    assert waiting.delay_ms(now=110.0) == 20_000
    assert waiting.delay_ms(now=131.0) is None  # overdue: sent for now
    assert Outgoing("inbox", "m-1", handed_at=100.0).delay_ms(now=200.0) is None


def test_timeouts_are_found_in_what_the_clients_wrap() -> None:
    wrapped = RuntimeError("publish failed")
    wrapped.__cause__ = TimeoutError("read timed out")

    assert is_timeout(wrapped)
    assert not is_timeout(ConnectionClosed(OSError("refused")))  # type: ignore[no-untyped-call]


def test_threads_start_on_first_use_and_hooks_run_on_them() -> None:
    name = f"test-publisher-{time.monotonic_ns()}"
    sent: list[tuple[str, str]] = []
    idle: list[str] = []
    exits: list[str] = []
    publisher: BackgroundPublisher[str] = BackgroundPublisher(
        lambda item: sent.append((item, threading.current_thread().name)),
        on_give_up=lambda item, reason, exc: None,
        on_idle=lambda: idle.append(threading.current_thread().name),
        on_thread_exit=lambda: exits.append(threading.current_thread().name),
        threads=2,
        idle_seconds=0.01,
        name=name,
    )

    def running() -> list[str]:
        return [t.name for t in threading.enumerate() if t.name.startswith(name)]

    assert running() == []  # nothing before the first item (safe to build before a fork)
    assert publisher.submit("a")
    assert publisher.flush(timeout=10)
    deadline = time.monotonic() + 10
    while len(set(idle)) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)

    assert sorted(running()) == [f"{name}-0", f"{name}-1"]
    assert publisher.close(timeout=10)
    assert running() == []
    assert sent[0][0] == "a"
    assert sent[0][1].startswith(name)
    assert set(idle) == set(exits) == {f"{name}-0", f"{name}-1"}  # each thread its own


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        BackgroundPublisher(lambda item: None, on_give_up=lambda *a: None, capacity=0)


class SlowBroker(StubBroker):
    """Each publish takes a moment; records what was published by the enqueue threads."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.published: list[str] = []

    def enqueue(self, message: Any, *, delay: int | None = None) -> Any:
        time.sleep(0.02)
        self.published.append(str(message.args[0]))
        return super().enqueue(message, delay=delay)


def test_the_worker_publishes_its_buffer_before_dramatiq_closes_the_broker(
    tmp_path: Path,
) -> None:
    env = {
        "ORDERHUB_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}",
        "ORDERHUB_BROKER__KIND": "redis",
        "ORDERHUB_BROKER__URL": "redis://127.0.0.1:6379/15",
        "ORDERHUB_CHANNELS__ENABLED": "[]",
    }
    lifecycle = HubLifecycle(load_settings(environ=env))
    broker = SlowBroker(middleware=middleware_stack(extra=[lifecycle]))
    declare_actors(broker)
    worker = Worker(broker, queues={"elsewhere"}, worker_threads=1)  # consumes none of ours
    worker.start()
    queue = lifecycle.queue
    assert queue is not None
    ids = [f"c-{n}" for n in range(20)]
    for command_id in ids:
        queue.enqueue_command(command_id)  # as follow-ups from actors would be

    worker.stop()  # dramatiq's CLI closes the broker right after this

    assert broker.published == ids
    with capture_logs() as logs:
        queue.enqueue_command("c-late")
    assert [e["reason"] for e in logs if e["event"] == "queue.enqueue_failed"] == ["closed"]


def test_delays_reach_the_delay_queues_of_both_kinds() -> None:
    broker = StubBroker(middleware=middleware_stack())
    queue = DramatiqQueue(broker)

    queue.enqueue_inbox("m-1", delay_seconds=30)
    queue.enqueue_command("c-1", delay_seconds=30)
    queue.enqueue_inbox("m-2")
    assert queue.flush(timeout=10)

    assert [queued(broker, f"orderhub.{q}.DQ") for q in ("inbox", "commands")] == [1, 1]
    assert queued(broker, "orderhub.inbox") == 1
    queue.close()


def one_at_a_time(item: str) -> None:
    raise AssertionError(f"{item} sent alone: with send_many, every send is a batch")


def test_what_piles_up_during_a_send_goes_in_one_batch_in_order() -> None:
    release = threading.Event()
    entered = threading.Event()
    batches: list[list[str]] = []

    def send_many(items: list[str]) -> None:
        batches.append(list(items))
        entered.set()
        assert release.wait(30), "never released"

    publisher: BackgroundPublisher[str] = BackgroundPublisher(
        one_at_a_time, send_many=send_many, batch=3, on_give_up=lambda *a: None
    )
    assert publisher.submit("a")
    assert entered.wait(10)
    for item in "bcdef":  # while "a" is being sent
        assert publisher.submit(item)
    release.set()
    assert publisher.flush(timeout=10)
    publisher.close(timeout=10)

    assert batches == [["a"], ["b", "c", "d"], ["e", "f"]]


def test_a_failed_batch_gives_up_each_of_its_items() -> None:
    release = threading.Event()
    entered = threading.Event()
    given_up: list[tuple[str, GiveUpReason]] = []
    batches: list[list[str]] = []

    def send_many(items: list[str]) -> None:
        batches.append(list(items))
        entered.set()
        assert release.wait(30), "never released"
        raise redis.ConnectionError("gone")

    publisher: BackgroundPublisher[str] = BackgroundPublisher(
        one_at_a_time,
        send_many=send_many,
        on_give_up=lambda item, reason, exc: given_up.append((item, reason)),
    )
    assert publisher.submit("a")
    assert entered.wait(10)
    for item in "bc":
        assert publisher.submit(item)
    release.set()
    assert publisher.flush(timeout=10)
    publisher.close(timeout=10)

    assert batches == [["a"], ["b", "c"]]
    assert given_up == [("a", "error"), ("b", "error"), ("c", "error")]


LONG_LINGER = 600.0
"""Seconds: a linger no test waits out; only a full batch, a flush or a close ends it."""


class Recorder:
    """``send_many`` that records each batch and signals it."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.sent = threading.Event()
        self.given_up: list[tuple[str, GiveUpReason]] = []

    def __call__(self, items: list[str]) -> None:
        self.batches.append(list(items))
        self.sent.set()


def lingering(
    sent: Recorder, *, batch: int = 3, capacity: int = 10_000
) -> BackgroundPublisher[str]:
    return BackgroundPublisher(
        one_at_a_time,
        send_many=sent,
        batch=batch,
        capacity=capacity,
        linger_seconds=LONG_LINGER,
        on_give_up=lambda item, reason, exc: sent.given_up.append((item, reason)),
    )


def wait_until_lingering(publisher: BackgroundPublisher[str]) -> None:
    deadline = time.monotonic() + 30
    while not publisher.lingering():
        assert time.monotonic() < deadline, "never lingered"
        time.sleep(0.005)


def test_what_arrives_while_the_oldest_lingers_goes_with_it_when_flushed() -> None:
    sent = Recorder()
    publisher = lingering(sent)
    assert publisher.submit("a")
    wait_until_lingering(publisher)
    assert publisher.submit("b")  # "a" waits for company: nothing sent yet
    assert sent.batches == []
    assert publisher.lingering()

    assert publisher.flush(timeout=30)  # ends the linger

    assert sent.batches == [["a", "b"]]
    publisher.close(timeout=10)


@pytest.mark.parametrize(
    ("batch", "capacity", "items"),
    [(3, 10_000, "abc"), (100, 2, "ab")],  # a full batch; a full buffer smaller than one
    ids=["full batch", "full buffer"],
)
def test_a_batch_that_cannot_grow_ends_the_linger(batch: int, capacity: int, items: str) -> None:
    sent = Recorder()
    publisher = lingering(sent, batch=batch, capacity=capacity)
    assert publisher.submit(items[0])
    wait_until_lingering(publisher)
    for item in items[1:]:
        assert publisher.submit(item)

    assert sent.sent.wait(30)

    assert (sent.batches, sent.given_up) == ([list(items)], [])
    publisher.close(timeout=10)


def test_close_sends_what_lingers_at_once() -> None:
    sent = Recorder()
    publisher = lingering(sent)
    assert publisher.submit("a")
    wait_until_lingering(publisher)

    assert publisher.close(timeout=30)

    assert (sent.batches, sent.given_up) == ([["a"]], [])


def test_a_linger_is_not_negative_nor_endless() -> None:
    for bad in (-0.001, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="linger_seconds"):
            BackgroundPublisher(
                lambda item: None,
                send_many=lambda items: None,
                on_give_up=lambda *a: None,
                linger_seconds=bad,
            )
