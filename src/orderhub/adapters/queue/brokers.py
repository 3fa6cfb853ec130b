"""The dramatiq brokers (Redis, RabbitMQ) with short client timeouts, and their middleware.

Publishing runs on dedicated threads (:mod:`orderhub.adapters.queue.publisher`) or, for
Redis, as tasks of the enqueuing event loop with an asyncio client of the same settings
(:func:`make_async_redis`, :mod:`orderhub.adapters.queue.loop_publisher`), never as a
blocking call on a loop; but a publish that hangs still holds up everything buffered
behind it, so every client call is bounded: a few seconds to connect, to read an answer
(Redis), for the AMQP handshake and while RabbitMQ blocks publishers (memory or disk
alarm), and a short heartbeat so that a connection gone silent (a confirm that never
comes) is given up.
Values given in the broker URL's query win over these.

pika's ``BlockingConnection`` is not thread-safe: dramatiq's RabbitMQ broker keeps one per
thread, and :func:`service_thread_connection` / :func:`close_thread_connection` look after
the calling thread's own (the publisher threads call them). redis-py clients are
thread-safe and need neither.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Literal
from urllib.parse import parse_qs, urlsplit

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
from redis.asyncio import Redis as AsyncRedis

from orderhub.application.hub import RetryPolicy

__all__ = [
    "PUBLISH_TIMEOUT",
    "RABBITMQ_HEARTBEAT",
    "REDIS_CONNECT_TIMEOUT",
    "REDIS_SOCKET_TIMEOUT",
    "BrokerKind",
    "close_thread_connection",
    "is_timeout",
    "make_async_redis",
    "make_broker",
    "middleware_stack",
    "ping_broker",
    "service_thread_connection",
]

BrokerKind = Literal["redis", "rabbitmq"]

PUBLISH_TIMEOUT: Final = 5.0
"""Seconds for one client step of a publish: connecting, reading the answer, the AMQP
handshake, being blocked by RabbitMQ."""
REDIS_CONNECT_TIMEOUT: Final = PUBLISH_TIMEOUT
REDIS_SOCKET_TIMEOUT: Final = PUBLISH_TIMEOUT
HEARTBEATS_PER_TIMEOUT: Final = 3
RABBITMQ_HEARTBEAT: Final = int(HEARTBEATS_PER_TIMEOUT * PUBLISH_TIMEOUT)
"""Seconds (15); pika gives up a connection silent for between 1 and 2 times this plus 5
seconds: a publisher confirm that never comes is abandoned then."""


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
    kind: BrokerKind,
    url: str,
    *,
    middleware: list[Middleware] | None = None,
    timeout_seconds: float = PUBLISH_TIMEOUT,
) -> dramatiq.Broker:
    """A Redis or RabbitMQ broker whose client calls give up after ``timeout_seconds``.
    Enqueueing to RabbitMQ waits for publisher confirms, so an enqueue that returns was
    accepted by the broker."""
    if middleware is None:
        middleware = middleware_stack()
    if kind == "redis":
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        client = redis.Redis.from_url(
            url,
            socket_connect_timeout=timeout_seconds,
            socket_timeout=timeout_seconds,
            health_check_interval=30,
            # once, at once, for a pooled connection the server dropped; never after a
            # timeout (that would double the wait, and the script may have run)
            retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
        )
        return RedisBroker(client=client, middleware=middleware)  # type: ignore[no-untyped-call]
    if kind == "rabbitmq":
        broker = RabbitmqBroker(url=url, middleware=middleware, confirm_delivery=True)
        bound_rabbitmq_parameters(broker, url, timeout_seconds)
        return broker
    raise ValueError(f"unknown broker kind {kind!r}")


def make_async_redis(url: str, *, timeout_seconds: float = PUBLISH_TIMEOUT) -> AsyncRedis:
    """An asyncio Redis client with :func:`make_broker`'s timeouts and retry, for the loop
    publisher (connections open at first use, on the loop that uses them)."""
    import redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return AsyncRedis.from_url(
        url,
        socket_connect_timeout=timeout_seconds,
        socket_timeout=timeout_seconds,
        health_check_interval=30,
        retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
    )


def bound_rabbitmq_parameters(broker: RabbitmqBroker, url: str, timeout: float) -> None:
    """Short timeouts on each of the broker's connection parameters, unless its URL sets
    them (``?socket_timeout=...&heartbeat=...``)."""
    parameters = broker.parameters if isinstance(broker.parameters, list) else [broker.parameters]
    for params, part in zip(parameters, url.split(";"), strict=False):
        given = parse_qs(urlsplit(part).query)
        defaults: dict[str, float] = {
            "socket_timeout": timeout,
            "stack_timeout": 2 * timeout,
            "blocked_connection_timeout": timeout,
            "heartbeat": max(1, int(HEARTBEATS_PER_TIMEOUT * timeout)),
        }
        for name, value in defaults.items():
            if name not in given:
                setattr(params, name, value)


def ping_broker(broker: dramatiq.Broker) -> None:
    """Raise unless the broker answers (blocking: call it in a thread from async code)."""
    if isinstance(broker, RedisBroker):
        broker.client.ping()
    elif isinstance(broker, RabbitmqBroker):
        import pika

        connection = pika.BlockingConnection(broker.parameters)
        connection.close()


def service_thread_connection(broker: dramatiq.Broker) -> None:
    """Answer heartbeats on the calling thread's idle RabbitMQ connection, if it has one,
    and drop it if it broke (the next publish opens another)."""
    if not isinstance(broker, RabbitmqBroker):
        return
    connection = getattr(broker.state, "connection", None)
    if connection is None:
        return
    try:
        if connection.is_open:
            connection.process_data_events(0)
            return
    except Exception:
        pass
    close_thread_connection(broker)


def close_thread_connection(broker: dramatiq.Broker) -> None:
    """Close the calling thread's RabbitMQ connection (dramatiq keeps one per thread)."""
    if isinstance(broker, RabbitmqBroker):
        del broker.connection


def is_timeout(exc: BaseException) -> bool:
    """Whether ``exc``, or an error it wraps, is a timeout (socket, redis-py, pika)."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        error = pending.pop()
        if id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, TimeoutError) or "Timeout" in type(error).__name__:
            return True
        wrapped = [error.__cause__, error.__context__, *error.args]
        pending.extend(e for e in wrapped if isinstance(e, BaseException))
    return False
