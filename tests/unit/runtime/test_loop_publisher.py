"""Publishing on the enqueuing event loop: batches gather for the linger (a full batch goes
at once), one send at a time per loop, the buffer is bounded, failures and timeouts are
given up for the sweeper, and items a stopped loop leaves behind go to the thread
publisher (``fallback``) instead of being lost. The sends here are fakes (the real client
is tested against Redis in ``tests/integration/broker/test_loop_publishing.py``)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from orderhub.adapters.queue.loop_publisher import LoopPublisher
from orderhub.adapters.queue.publisher import Breaker, GiveUpReason

BOUND = 5.0
"""Seconds: generous for what takes microseconds; a wait that long is a failure."""


@dataclass
class Broker:
    """What the fake sends saw; a send can be held until released."""

    batches: list[list[str]] = field(default_factory=list)
    failures: list[BaseException] = field(default_factory=list)
    hold: asyncio.Event | None = None
    entered: threading.Event = field(default_factory=threading.Event)
    sending: int = 0
    most_at_once: int = 0
    fallback: list[str] = field(default_factory=list)
    given_up: list[tuple[str, GiveUpReason]] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)
    clients: list[Client] = field(default_factory=list)

    async def send_many(self, client: Client, items: list[str]) -> None:
        assert not client.closed
        self.sending += 1
        self.most_at_once = max(self.most_at_once, self.sending)
        try:
            self.entered.set()
            if self.hold is not None:
                await self.hold.wait()
            if self.failures:
                raise self.failures.pop(0)
            self.batches.append(list(items))
        finally:
            self.sending -= 1

    def to_fallback(self, item: str) -> bool:
        self.fallback.append(item)
        return True

    def make_client(self) -> Client:
        self.clients.append(Client())
        return self.clients[-1]

    def publisher(self, **options: object) -> LoopPublisher[str, Client]:
        defaults: dict[str, object] = {
            "batch": 100,
            "linger_seconds": 0.0,
            "capacity": 1000,
            "make_client": self.make_client,
        }
        return LoopPublisher(
            self.send_many,
            close_client=Client.aclose,
            fallback=self.to_fallback,
            on_give_up=lambda item, reason, exc: self.given_up.append((item, reason)),
            on_sent=self.sent.append,
            classify=lambda exc: "timeout" if isinstance(exc, TimeoutError) else "error",
            **{**defaults, **options},  # type: ignore[arg-type]
        )


@dataclass
class Client:
    closed: bool = False

    async def aclose(self) -> None:
        self.closed = True


@pytest.fixture
def broker() -> Broker:
    return Broker()


async def test_ids_gather_for_the_linger_then_go_in_one_send(broker: Broker) -> None:
    publisher = broker.publisher(linger_seconds=0.2)
    for n in range(5):
        assert publisher.submit(f"id-{n}")
    await asyncio.sleep(0)  # the loop turns: nothing is sent before the linger ends
    assert broker.batches == []
    assert publisher.pending() == 5
    assert await publisher.drain(BOUND)
    assert broker.batches == [[f"id-{n}" for n in range(5)]]
    assert broker.sent == [f"id-{n}" for n in range(5)]
    assert publisher.pending() == 0


async def test_a_full_batch_goes_without_waiting_for_the_linger(broker: Broker) -> None:
    publisher = broker.publisher(linger_seconds=3600.0, batch=3)
    for n in range(3):
        publisher.submit(f"id-{n}")
    await asyncio.wait_for(asyncio.to_thread(broker.entered.wait, BOUND), BOUND)
    await asyncio.sleep(0)
    assert broker.batches == [["id-0", "id-1", "id-2"]]


async def test_one_send_at_a_time_and_what_piles_up_goes_next_in_order(broker: Broker) -> None:
    broker.hold = asyncio.Event()
    publisher = broker.publisher(batch=2)
    publisher.submit("a")
    await asyncio.wait_for(asyncio.to_thread(broker.entered.wait, BOUND), BOUND)
    for item in "bcde":
        publisher.submit(item)  # the first send is held: these wait behind it
    await asyncio.sleep(0.05)
    assert broker.sending == 1
    broker.hold.set()
    assert await publisher.drain(BOUND)
    assert broker.batches == [["a"], ["b", "c"], ["d", "e"]]
    assert broker.most_at_once == 1


async def test_the_buffer_is_bounded_and_what_does_not_fit_is_given_up(broker: Broker) -> None:
    broker.hold = asyncio.Event()
    publisher = broker.publisher(capacity=3, batch=1)
    results = [publisher.submit(f"id-{n}") for n in range(5)]
    assert results == [True, True, True, False, False]
    assert broker.given_up == [("id-3", "buffer_full"), ("id-4", "buffer_full")]
    broker.hold.set()
    assert await publisher.drain(BOUND)
    assert [item for batch in broker.batches for item in batch] == ["id-0", "id-1", "id-2"]


async def test_a_failed_send_is_given_up_and_a_failing_broker_trips_the_breaker(
    broker: Broker,
) -> None:
    broker.failures = [ConnectionError("refused")] * 2
    publisher = broker.publisher(breaker=lambda: Breaker(threshold=2, cooldown_seconds=600))
    for item in ("a", "b", "c"):
        publisher.submit(item)
        assert await publisher.drain(BOUND)
    # two sends failed (given up as errors), then the breaker gives up without a send
    assert broker.given_up == [("a", "error"), ("b", "error"), ("c", "broker_unavailable")]
    assert broker.batches == []
    assert broker.sent == []


async def test_a_send_that_hangs_is_given_up_after_the_timeout(broker: Broker) -> None:
    broker.hold = asyncio.Event()  # never set
    publisher = broker.publisher(timeout_seconds=0.05)
    publisher.submit("a")
    assert await publisher.drain(BOUND)
    assert broker.given_up == [("a", "timeout")]
    assert broker.sent == []


def test_an_item_submitted_off_any_loop_goes_to_the_fallback(broker: Broker) -> None:
    publisher = broker.publisher()
    assert publisher.submit("a")
    assert broker.fallback == ["a"]
    assert broker.clients == []


def test_what_a_finished_loop_left_lingering_goes_to_the_fallback_at_flush(
    broker: Broker,
) -> None:
    publisher = broker.publisher(linger_seconds=3600.0)

    async def enqueue() -> None:
        publisher.submit("a")
        publisher.submit("b")

    asyncio.run(enqueue())  # returns with both lingering: no send ever started
    assert broker.batches == []
    assert publisher.pending() == 2
    assert publisher.flush(BOUND)
    assert broker.fallback == ["a", "b"]
    assert publisher.pending() == 0
    assert broker.given_up == []


def test_a_send_cancelled_as_its_loop_ends_hands_everything_to_the_fallback(
    broker: Broker,
) -> None:
    publisher = broker.publisher(batch=1)

    async def enqueue() -> None:
        broker.hold = asyncio.Event()  # never set: asyncio.run cancels the send
        publisher.submit("a")
        publisher.submit("b")
        await asyncio.sleep(0.01)
        assert broker.sending == 1

    asyncio.run(enqueue())
    assert sorted(broker.fallback) == ["a", "b"]  # in flight, and waiting behind it
    assert publisher.flush(BOUND)
    assert sorted(broker.fallback) == ["a", "b"]
    assert broker.given_up == []


@pytest.fixture
def loop_thread() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop running in a thread of its own (as dramatiq's jobs run)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(BOUND)
        loop.close()


def test_flush_from_another_thread_sends_on_the_running_loop(
    broker: Broker, loop_thread: asyncio.AbstractEventLoop
) -> None:
    publisher = broker.publisher(linger_seconds=3600.0)
    asyncio.run_coroutine_threadsafe(_submit(publisher, "a", "b"), loop_thread).result(BOUND)
    assert broker.batches == []
    assert publisher.flush(BOUND)  # ends the linger, waits for the send on that loop
    assert broker.batches == [["a", "b"]]
    assert broker.fallback == []
    assert publisher.close(BOUND)
    assert all(client.closed for client in broker.clients)
    asyncio.run_coroutine_threadsafe(_submit(publisher, "c"), loop_thread).result(BOUND)
    assert broker.given_up == [("c", "closed")]


async def test_flush_on_the_loop_itself_does_not_wait_for_it(broker: Broker) -> None:
    publisher = broker.publisher(linger_seconds=3600.0)
    publisher.submit("a")
    started = time.monotonic()
    # it would wait for this very loop, which cannot run meanwhile: it says no at once
    assert not publisher.flush(6 * BOUND)
    assert time.monotonic() - started < BOUND
    assert await publisher.drain(BOUND)
    assert broker.batches == [["a"]]


async def _submit(publisher: LoopPublisher[str, Client], *items: str) -> None:
    for item in items:
        publisher.submit(item)


def test_a_loop_too_busy_to_retire_its_lane_at_close_loses_nothing(
    broker: Broker, loop_thread: asyncio.AbstractEventLoop
) -> None:
    """close() from another thread while the loop is stuck (a long callback): the lane
    cannot retire in time, so what it holds goes to the fallback from the closing thread,
    never dropped with the lane, and no send starts once the loop is free again."""
    publisher = broker.publisher(linger_seconds=3600.0)
    asyncio.run_coroutine_threadsafe(_submit(publisher, "a", "b"), loop_thread).result(BOUND)
    stuck = threading.Event()
    loop_thread.call_soon_threadsafe(stuck.wait, BOUND)  # the loop runs nothing meanwhile
    assert not publisher.close(0.1)
    assert broker.fallback == ["a", "b"]
    assert publisher.pending() == 0
    stuck.set()
    asyncio.run_coroutine_threadsafe(asyncio.sleep(0.05), loop_thread).result(BOUND)
    assert broker.batches == []
    assert broker.given_up == []


async def test_a_loop_without_a_client_hands_its_items_to_the_fallback(broker: Broker) -> None:
    def no_client() -> Client:
        raise OSError("no sockets left")

    publisher = broker.publisher(make_client=no_client)
    assert publisher.submit("a")
    assert broker.fallback == ["a"]
    assert broker.given_up == []


async def test_close_on_the_loop_itself_hands_what_it_holds_to_the_fallback(
    broker: Broker,
) -> None:
    """Nothing can wait for the loop's own sends there: what lingers goes to the thread
    publisher, never dropped with the lane, and the lane's client is closed."""
    publisher = broker.publisher(linger_seconds=3600.0)
    publisher.submit("a")
    publisher.submit("b")
    assert not publisher.close(BOUND)
    assert broker.fallback == ["a", "b"]
    assert publisher.pending() == 0
    await asyncio.sleep(0.01)  # the client's close, a task of this loop
    assert [client.closed for client in broker.clients] == [True]
    assert broker.batches == []
