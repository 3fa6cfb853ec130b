"""Production queue: dramatiq on Redis or RabbitMQ.

Two async actors run the application services on the worker's event loop (dramatiq's
``AsyncIO`` middleware): ``dispatch_command(command_id)`` and
``process_inbox_message(message_id)``. They find the :class:`Hub` in a module-level holder
that the worker process fills at boot (:func:`set_hub`).

Retries: both services pace and cap their own retries (channel errors, write conflicts:
a delayed message, the due time kept on the row, ``max_attempts`` checked at each claim),
so only infrastructure errors (the database unreachable...) reach dramatiq's ``Retries``
middleware, a bounded number of times; the sweeper is the backstop.

Enqueueing happens after the commit and never blocks the caller's thread (an event loop,
in the API and in the worker's async actors): ``enqueue_*`` puts the id in a bounded
buffer and returns. With Redis and a ``redis_url``, a task of that same loop sends it with
an asyncio client (:mod:`orderhub.adapters.queue.loop_publisher`); otherwise a publisher
thread does (:mod:`orderhub.adapters.queue.publisher`), within short client timeouts
(:mod:`orderhub.adapters.queue.brokers`). What cannot be published (a full buffer, a
failed or timed-out publish, a broker that keeps failing, a shutdown) is logged and
counted, never raised: the row is committed, and the sweeper queues it again.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from redis.asyncio import Redis as AsyncRedis

from orderhub.adapters.queue import jobs
from orderhub.adapters.queue.brokers import (
    PUBLISH_TIMEOUT,
    REDIS_CONNECT_TIMEOUT,
    REDIS_SOCKET_TIMEOUT,
    BrokerKind,
    close_thread_connection,
    is_timeout,
    make_async_redis,
    make_broker,
    middleware_stack,
    ping_broker,
    service_thread_connection,
)
from orderhub.adapters.queue.loop_publisher import LoopPublisher
from orderhub.adapters.queue.publisher import (
    DEFAULT_BATCH,
    DEFAULT_CAPACITY,
    DEFAULT_LINGER_SECONDS,
    BackgroundPublisher,
    Breaker,
    GiveUpReason,
)
from orderhub.adapters.queue.redis_batch import (
    enqueue_many,
    enqueue_many_async,
    message_for,
    unique_ids,
)
from orderhub.application.hub import Hub, RetryPolicy
from orderhub.logging import get_logger
from orderhub.metrics import ENQUEUE_FAILURES, ENQUEUE_GIVEN_UP, ENQUEUE_PUBLISH_SECONDS

__all__ = [
    "CLOSE_TIMEOUT",
    "DISPATCH_ACTOR",
    "INBOX_ACTOR",
    "REDIS_CONNECT_TIMEOUT",
    "REDIS_SOCKET_TIMEOUT",
    "Actors",
    "BrokerKind",
    "DramatiqQueue",
    "Outgoing",
    "current_hub",
    "declare_actors",
    "make_broker",
    "middleware_stack",
    "ping_broker",
    "set_hub",
]

log = get_logger(__name__)

DISPATCH_ACTOR: Final = "dispatch_command"
INBOX_ACTOR: Final = "process_inbox_message"
DISPATCH_MAX_RETRIES: Final = 5
"""Dramatiq-level retries of a dispatch that raised (database down...); the channel-level
retries are the command's own, and the sweeper requeues whatever is still pending."""
CLOSE_TIMEOUT: Final = 5.0
"""Seconds :meth:`DramatiqQueue.close` waits for the buffer to drain."""

# --- the hub holder ------------------------------------------------------------------------

_hub: Hub | None = None


def set_hub(hub: Hub | None) -> None:
    """Install (or remove) the hub the actors of this process use."""
    global _hub
    _hub = hub


def current_hub() -> Hub:
    if _hub is None:
        raise RuntimeError(
            "no Hub in this process: the worker must call orderhub.adapters.queue."
            "dramatiq_queue.set_hub (orderhub worker does it at boot)"
        )
    return _hub


# --- the actors ----------------------------------------------------------------------------


async def dispatch_command(command_id: str) -> None:
    await jobs.run_dispatch(current_hub(), command_id)


async def process_inbox_message(message_id: str) -> None:
    await jobs.run_inbox(current_hub(), message_id)


@dataclass(frozen=True, slots=True)
class Actors:
    dispatch: dramatiq.Actor[[str], Any]
    inbox: dramatiq.Actor[[str], Any]


def queue_names(prefix: str) -> tuple[str, str]:
    """(commands queue, inbox queue)."""
    return f"{prefix}.commands", f"{prefix}.inbox"


def declare_actors(
    broker: dramatiq.Broker, *, queue_prefix: str = "orderhub", retry: RetryPolicy | None = None
) -> Actors:
    """Declare both actors on ``broker`` (or return them if it already has them)."""
    if DISPATCH_ACTOR in broker.actors and INBOX_ACTOR in broker.actors:
        return Actors(
            dispatch=broker.get_actor(DISPATCH_ACTOR), inbox=broker.get_actor(INBOX_ACTOR)
        )
    policy = retry or RetryPolicy()
    commands_queue, inbox_queue = queue_names(queue_prefix)
    dispatch_actor: dramatiq.Actor[[str], Any] = dramatiq.actor(
        broker=broker,
        actor_name=DISPATCH_ACTOR,
        queue_name=commands_queue,
        max_retries=DISPATCH_MAX_RETRIES,
        min_backoff=1_000,
        max_backoff=60_000,
        # a call that outlives its lease is presumed dead anyway: the sweeper resends it
        time_limit=int(policy.lease_seconds * 1000),
    )(dispatch_command)
    inbox_actor: dramatiq.Actor[[str], Any] = dramatiq.actor(
        broker=broker,
        actor_name=INBOX_ACTOR,
        queue_name=inbox_queue,
        max_retries=policy.max_attempts,
        min_backoff=int(policy.base_seconds * 1000),
        max_backoff=int(policy.max_seconds * 1000),
        time_limit=int(policy.lease_seconds * 1000),
    )(process_inbox_message)
    return Actors(dispatch=dispatch_actor, inbox=inbox_actor)


# --- the port ------------------------------------------------------------------------------


What = Literal["command", "inbox"]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One id waiting for the broker; times are ``time.monotonic()``."""

    what: What
    ident: str
    handed_at: float
    due_at: float | None = None  # a delayed command: not to run before this

    def delay_ms(self, now: float) -> int | None:
        """The delay left (the wait in the buffer counts), None when it is due."""
        if self.due_at is None:
            return None
        left = int((self.due_at - now) * 1000)
        return left if left > 0 else None


class DramatiqQueue:
    """:class:`~orderhub.application.ports.CommandQueue` over a dramatiq broker.

    ``enqueue_*`` only buffers (non-blocking, never raises). ``publisher_threads`` daemon
    threads publish, started at the first enqueue; with a Redis broker and ``redis_url``
    (its server), the enqueuing loop publishes instead (:attr:`on_loop`), and the threads
    take only what is enqueued off any loop or left behind by a loop that stopped.
    :meth:`flush` waits for what was handed over; :meth:`shutdown` drains and stops the
    publishers, :meth:`close` also closes the broker."""

    def __init__(
        self,
        broker: dramatiq.Broker,
        *,
        queue_prefix: str = "orderhub",
        retry: RetryPolicy | None = None,
        buffer_size: int = DEFAULT_CAPACITY,
        publisher_threads: int = 1,
        breaker: Breaker | None = None,
        linger_seconds: float = DEFAULT_LINGER_SECONDS,
        redis_url: str | None = None,
    ) -> None:
        self.broker = broker
        self.actors = declare_actors(broker, queue_prefix=queue_prefix, retry=retry)
        self.publisher: BackgroundPublisher[Outgoing] = BackgroundPublisher(
            self._send,
            on_give_up=self._given_up,
            # Redis: what piled up goes in one pipeline (one round trip for the lot)
            send_many=self._send_many if isinstance(broker, RedisBroker) else None,
            batch=DEFAULT_BATCH,
            linger_seconds=linger_seconds,  # Redis only: a batch gathers (publisher.py)
            on_sent=self._sent,
            classify=lambda exc: "timeout" if is_timeout(exc) else "error",
            on_idle=lambda: service_thread_connection(broker),
            on_thread_exit=lambda: close_thread_connection(broker),
            capacity=buffer_size,
            threads=publisher_threads,
            breaker=breaker,
            name="orderhub-enqueue",
        )
        self.on_loop: LoopPublisher[Outgoing, AsyncRedis] | None = None
        self._unpack_size_known = False
        if redis_url is not None and isinstance(broker, RedisBroker):
            self.on_loop = LoopPublisher(
                self._send_many_async,
                make_client=lambda: make_async_redis(redis_url),
                close_client=lambda client: client.aclose(),
                fallback=self.publisher.submit,
                on_give_up=self._given_up,
                on_sent=self._sent,
                classify=lambda exc: "timeout" if is_timeout(exc) else "error",
                batch=DEFAULT_BATCH,
                linger_seconds=linger_seconds,
                capacity=buffer_size,
                timeout_seconds=2 * PUBLISH_TIMEOUT,
                breaker=lambda: replace(breaker) if breaker is not None else Breaker(),
            )

    # --- CommandQueue --------------------------------------------------------------------

    def enqueue_command(self, command_id: str, *, delay_seconds: float = 0) -> None:
        self._hand_over("command", command_id, delay_seconds)

    def enqueue_inbox(self, message_id: str, *, delay_seconds: float = 0) -> None:
        self._hand_over("inbox", message_id, delay_seconds)

    # --- lifecycle -----------------------------------------------------------------------

    def flush(self, timeout: float = CLOSE_TIMEOUT) -> bool:
        """Wait (blocking: not on a loop that enqueued) until what was enqueued so far is
        published or given up; False if ``timeout`` seconds passed first."""
        deadline = time.monotonic() + timeout
        done = self.on_loop is None or self.on_loop.flush(timeout)
        return self.publisher.flush(max(deadline - time.monotonic(), 0.0)) and done

    def shutdown(self, timeout: float = CLOSE_TIMEOUT) -> bool:
        """Stop taking ids, publish what is buffered for up to ``timeout`` seconds, give up
        the rest (the sweeper has them) and stop the publishers. The broker stays open."""
        deadline = time.monotonic() + timeout
        done = False
        try:
            # a fifth kept for the thread publisher, last: it takes what the loops left
            done = self.on_loop is None or self.on_loop.close(timeout * 0.8)
        finally:
            done = self.publisher.close(max(deadline - time.monotonic(), 0.0)) and done
        return done

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """:meth:`shutdown`, then close the broker's connections; blocking, and bounded:
        a RabbitMQ connection stuck in a publish is left to go with the process (closing
        it would wait for the silent broker's answer)."""
        clean = False
        try:
            clean = self.shutdown(timeout)
        finally:
            if clean or not isinstance(self.broker, RabbitmqBroker):
                self.broker.close()
            else:
                log.warning("queue.broker_left_open", note="a publish is stuck on it")

    def ping(self) -> None:
        ping_broker(self.broker)

    # --- internals -----------------------------------------------------------------------

    def _hand_over(self, what: What, ident: str, delay_seconds: float) -> None:
        now = time.monotonic()
        outgoing = Outgoing(what, ident, now, now + delay_seconds if delay_seconds > 0 else None)
        try:
            if self.on_loop is not None:
                self.on_loop.submit(outgoing)
            else:
                self.publisher.submit(outgoing)
        except Exception as exc:  # never raise to the caller: the row is committed
            self._given_up(outgoing, "error", exc)

    def _send(self, outgoing: Outgoing) -> None:
        """On a publisher thread: the blocking broker call."""
        delay = outgoing.delay_ms(time.monotonic())
        self._actor(outgoing).send_with_options(args=(outgoing.ident,), delay=delay)

    def _send_many(self, batch: list[Outgoing]) -> None:
        """On a publisher thread, Redis only: the batch in one pipeline."""
        assert isinstance(self.broker, RedisBroker)
        enqueue_many(self.broker, self._messages(batch))

    async def _send_many_async(self, client: AsyncRedis, batch: list[Outgoing]) -> None:
        """On the enqueuing loop, Redis only: the batch in one pipeline."""
        assert isinstance(self.broker, RedisBroker)
        if not self._unpack_size_known:
            # dramatiq asks Redis for it once per process, through its blocking client:
            # never on the loop (a Redis that does not answer would stall it)
            await asyncio.to_thread(self.broker._max_unpack_size)
            self._unpack_size_known = True
        await enqueue_many_async(self.broker, client, self._messages(batch))

    def _messages(self, batch: list[Outgoing]) -> list[tuple[dramatiq.Message[Any], int | None]]:
        now = time.monotonic()
        return [
            (message_for(self._actor(outgoing), outgoing.ident, message_id), outgoing.delay_ms(now))
            for outgoing, message_id in zip(batch, unique_ids(len(batch)), strict=True)
        ]

    def _actor(self, outgoing: Outgoing) -> dramatiq.Actor[[str], Any]:
        return self.actors.dispatch if outgoing.what == "command" else self.actors.inbox

    def _sent(self, outgoing: Outgoing) -> None:
        ENQUEUE_PUBLISH_SECONDS.labels(outgoing.what).observe(time.monotonic() - outgoing.handed_at)

    def _given_up(
        self, outgoing: Outgoing, reason: GiveUpReason, exc: BaseException | None
    ) -> None:
        ENQUEUE_FAILURES.labels(outgoing.what).inc()
        ENQUEUE_GIVEN_UP.labels(outgoing.what, reason).inc()
        log.error(
            "queue.enqueue_failed",
            what=outgoing.what,
            id=outgoing.ident,
            reason=reason,
            error=f"{type(exc).__name__}: {exc}" if exc is not None else None,
            note="committed; the sweeper will queue it again",
        )
