"""Publishing from the enqueuing event loop to a real Redis (``[broker] publish_on_loop``):
what the loop publisher sends is what dramatiq's own enqueue would have stored, a script
Redis forgot is loaded again, and a Redis that cannot be reached is given up (logged for
the sweeper) without holding up the loop."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import dramatiq
import pytest
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import dq_name
from structlog.testing import capture_logs

from orderhub.adapters.queue.dramatiq_queue import DramatiqQueue, make_broker, middleware_stack

from .conftest import REDIS_URL, require
from .test_slow_broker import MAX_LOOP_STALL, LoopWatch, received

pytestmark = pytest.mark.broker

BOUND = 30.0


@pytest.fixture
def redis_broker(cleanup: list[tuple[dramatiq.Broker, str]]) -> tuple[RedisBroker, str]:
    require("redis", REDIS_URL)
    broker = make_broker("redis", REDIS_URL, middleware=middleware_stack())
    assert isinstance(broker, RedisBroker)
    prefix = f"orderhub-test-loop-{time.monotonic_ns()}"
    cleanup.append((broker, prefix))
    return broker, prefix


async def test_ids_enqueued_on_a_loop_reach_redis_as_dramatiq_messages(
    redis_broker: tuple[RedisBroker, str],
) -> None:
    broker, prefix = redis_broker
    queue = DramatiqQueue(broker, queue_prefix=prefix, redis_url=REDIS_URL)
    assert queue.on_loop is not None
    broker.client.script_flush()  # the loop's client must load dramatiq's script itself
    ids = {f"m-{n}" for n in range(150)}
    try:
        for ident in sorted(ids):
            queue.enqueue_inbox(ident)
        assert queue.on_loop.pending() == len(ids)  # on this loop's lane, not a thread's
        assert await queue.on_loop.drain(BOUND)
        got = await asyncio.to_thread(received, broker, f"{prefix}.inbox", ids)
    finally:
        assert await asyncio.to_thread(queue.shutdown, BOUND)
    assert got == ids


async def test_the_delayed_message_keeps_its_delay(redis_broker: tuple[RedisBroker, str]) -> None:
    broker, prefix = redis_broker
    queue = DramatiqQueue(broker, queue_prefix=prefix, redis_url=REDIS_URL)
    assert queue.on_loop is not None
    before_ms = time.time() * 1000
    queue.enqueue_command("c-late", delay_seconds=2.0)
    try:
        assert await queue.on_loop.drain(BOUND)
        consumer = broker.consume(dq_name(f"{prefix}.commands"), timeout=200)
        try:
            message = await asyncio.to_thread(next, consumer)
            deadline = time.monotonic() + BOUND
            while message is None and time.monotonic() < deadline:
                message = await asyncio.to_thread(next, consumer)
            assert message is not None
            consumer.ack(message)
        finally:
            consumer.close()
    finally:
        assert await asyncio.to_thread(queue.shutdown, BOUND)
    assert message.args == ("c-late",)
    assert message.options["eta"] >= before_ms + 1900  # the wait in the buffer counts


async def test_an_unreachable_redis_is_given_up_and_logged_without_holding_the_loop(
    redis_broker: tuple[RedisBroker, str],
) -> None:
    broker, prefix = redis_broker
    queue = DramatiqQueue(broker, queue_prefix=prefix, redis_url="redis://127.0.0.1:9/0")
    assert queue.on_loop is not None
    with capture_logs() as logs:
        started = time.monotonic()
        queue.enqueue_command("c-1")
        queue.enqueue_inbox("m-1")
        assert time.monotonic() - started < 1.0  # handed over, not sent, on this loop
        assert await queue.on_loop.drain(BOUND)
        assert await asyncio.to_thread(queue.shutdown, BOUND)
    failed = [
        (e["what"], e["id"], e["reason"]) for e in logs if e["event"] == "queue.enqueue_failed"
    ]
    assert failed == [("command", "c-1", "error"), ("inbox", "m-1", "error")]


@pytest.fixture
def silent_redis() -> Iterator[str]:
    """A Redis URL whose server takes connections and never answers (hung, a failover
    half done): a listening socket nothing accepts from."""
    server = socket.create_server(("127.0.0.1", 0), backlog=64)
    try:
        yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    finally:
        server.close()


async def test_a_redis_that_never_answers_does_not_hold_up_the_loop(
    silent_redis: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both clients on the silent server, and dramatiq's unpack size not yet asked for in
    this process (it asks Redis once, through its blocking client): the loop goes on, and
    the ids are given up (logged for the sweeper) once the clients' timeouts end."""
    monkeypatch.setattr(RedisBroker, "_max_unpack_size_val", None)
    broker = make_broker("redis", silent_redis, middleware=middleware_stack())
    assert isinstance(broker, RedisBroker)
    queue = DramatiqQueue(broker, queue_prefix="orderhub-test-silent", redis_url=silent_redis)
    assert queue.on_loop is not None
    try:
        with capture_logs() as logs, LoopWatch() as loop:
            queue.enqueue_command("c-1")
            queue.enqueue_inbox("m-1")
            assert await queue.on_loop.drain(BOUND)
        assert loop.longest < MAX_LOOP_STALL, f"the loop stalled {loop.longest:.2f} s"
        failed = {
            (e["what"], e["id"], e["reason"]) for e in logs if e["event"] == "queue.enqueue_failed"
        }
        assert failed == {("command", "c-1", "timeout"), ("inbox", "m-1", "timeout")}
    finally:
        await asyncio.to_thread(queue.shutdown, 1.0)
        broker.client.close()
