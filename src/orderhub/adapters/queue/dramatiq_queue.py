"""Production queue: dramatiq on Redis or RabbitMQ.

Two async actors run the application services on the worker's event loop (dramatiq's
``AsyncIO`` middleware): ``dispatch_command(command_id)`` and
``process_inbox_message(message_id)``. They find the :class:`Hub` in a module-level holder
that the worker process fills at boot (:func:`set_hub`).

Retries: ``dispatch_command`` schedules its own channel retries (a delayed message, the
time kept on the command), so only infrastructure errors reach dramatiq's ``Retries``
middleware, and the sweeper is the backstop. A transient channel error while processing
an inbox message (or a write conflict that kept losing) becomes a quiet
:class:`dramatiq.Retry`, with the channel's ``Retry-After`` as the delay when it gave one,
else dramatiq's exponential backoff bounded by the retry policy.

Enqueueing happens after the commit; a failure is logged and counted, never raised: the
row is committed, and the sweeper queues it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import (
    AgeLimit,
    AsyncIO,
    Callbacks,
    Middleware,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from orderhub.adapters.queue import jobs
from orderhub.application.hub import Hub, RetryPolicy
from orderhub.channels.spi import TransientChannelError
from orderhub.logging import get_logger
from orderhub.metrics import ENQUEUE_FAILURES

__all__ = [
    "DISPATCH_ACTOR",
    "INBOX_ACTOR",
    "Actors",
    "DramatiqQueue",
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
REDIS_CONNECT_TIMEOUT: Final = 5.0
REDIS_SOCKET_TIMEOUT: Final = 30.0

BrokerKind = Literal["redis", "rabbitmq"]

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
    hub = current_hub()
    try:
        await jobs.run_inbox(hub, message_id)
    except TransientChannelError as exc:
        raise dramatiq.Retry(exc.message, delay=retry_after_ms(hub.retry, exc)) from exc
    except jobs.RETRYABLE as exc:
        raise dramatiq.Retry(str(exc)) from exc


def retry_after_ms(policy: RetryPolicy, exc: TransientChannelError) -> int | None:
    """The channel's ``Retry-After`` as a dramatiq delay, bounded by the policy; None lets
    the ``Retries`` middleware pick its exponential backoff."""
    if exc.retry_after is None:
        return None
    seconds = min(max(exc.retry_after, policy.base_seconds), policy.max_seconds)
    return int(seconds * 1000)


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


# --- brokers -------------------------------------------------------------------------------


def middleware_stack(
    *, retry: RetryPolicy | None = None, extra: Sequence[Middleware] = ()
) -> list[Middleware]:
    """dramatiq's defaults, minus nothing we need and plus ``AsyncIO``. No Prometheus
    middleware: the hub exports its own metrics (``orderhub.metrics``)."""
    policy = retry or RetryPolicy()
    return [
        AgeLimit(),
        TimeLimit(),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        Retries(
            max_retries=policy.max_attempts,
            min_backoff=int(policy.base_seconds * 1000),
            max_backoff=int(policy.max_seconds * 1000),
        ),
        AsyncIO(),
        *extra,
    ]


def make_broker(
    kind: BrokerKind, url: str, *, middleware: list[Middleware] | None = None
) -> dramatiq.Broker:
    """A Redis or RabbitMQ broker. Enqueueing to RabbitMQ waits for publisher confirms, so
    an enqueue that returns was accepted by the broker."""
    stack = middleware if middleware is not None else middleware_stack()
    if kind == "redis":
        import redis

        client = redis.Redis.from_url(
            url,
            socket_connect_timeout=REDIS_CONNECT_TIMEOUT,
            socket_timeout=REDIS_SOCKET_TIMEOUT,
            health_check_interval=30,
        )
        return RedisBroker(client=client, middleware=stack)  # type: ignore[no-untyped-call]
    if kind == "rabbitmq":
        return RabbitmqBroker(url=url, middleware=stack, confirm_delivery=True)
    raise ValueError(f"unknown broker kind {kind!r}")


def ping_broker(broker: dramatiq.Broker) -> None:
    """Raise unless the broker answers (blocking: call it in a thread from async code)."""
    if isinstance(broker, RedisBroker):
        broker.client.ping()
    elif isinstance(broker, RabbitmqBroker):
        import pika

        params = broker.parameters
        connection = pika.BlockingConnection(params)
        connection.close()


# --- the port ------------------------------------------------------------------------------


class DramatiqQueue:
    """:class:`~orderhub.application.ports.CommandQueue` over a dramatiq broker."""

    def __init__(
        self,
        broker: dramatiq.Broker,
        *,
        queue_prefix: str = "orderhub",
        retry: RetryPolicy | None = None,
    ) -> None:
        self.broker = broker
        self.actors = declare_actors(broker, queue_prefix=queue_prefix, retry=retry)

    def enqueue_command(self, command_id: str, *, delay_seconds: float = 0) -> None:
        delay = int(delay_seconds * 1000) if delay_seconds > 0 else None
        try:
            self.actors.dispatch.send_with_options(args=(command_id,), delay=delay)
        except Exception as exc:
            self._failed("command", command_id, exc)

    def enqueue_inbox(self, message_id: str) -> None:
        try:
            self.actors.inbox.send_with_options(args=(message_id,))
        except Exception as exc:
            self._failed("inbox", message_id, exc)

    def _failed(self, what: str, ident: str, exc: Exception) -> None:
        ENQUEUE_FAILURES.labels(what).inc()
        log.error(
            "queue.enqueue_failed",
            what=what,
            id=ident,
            error=f"{type(exc).__name__}: {exc}",
            note="committed; the sweeper will queue it again",
        )

    def ping(self) -> None:
        ping_broker(self.broker)

    def close(self) -> None:
        self.broker.close()
