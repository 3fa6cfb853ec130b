"""Real brokers for the queue adapter: Redis and RabbitMQ on this machine.

``ORDERHUB_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/15``) and
``ORDERHUB_TEST_RABBITMQ_URL`` (default ``amqp://guest:guest@127.0.0.1:5672/%2F``).
A broker that cannot be reached FAILS these tests (a skipped test is a missing test); run
``pytest -m "not broker"`` to leave them out on purpose. Every test uses queues of its
own (a random prefix) and deletes them afterwards."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, Literal

import dramatiq
import pytest
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker

from orderhub.adapters.queue.dramatiq_queue import make_broker, middleware_stack, ping_broker

REDIS_URL: Final = os.environ.get("ORDERHUB_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
RABBITMQ_URL: Final = os.environ.get(
    "ORDERHUB_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"
)

Kind = Literal["redis", "rabbitmq"]


@dataclass(frozen=True)
class BrokerTarget:
    kind: Kind
    url: str
    prefix: str


_reachable: dict[Kind, str | None] = {}


def require(kind: Kind, url: str) -> None:
    """Fail (never skip) when the broker does not answer."""
    if kind not in _reachable:
        try:
            broker = make_broker(kind, url, middleware=middleware_stack())
            try:
                ping_broker(broker)
            finally:
                broker.close()
            _reachable[kind] = None
        except Exception as exc:
            _reachable[kind] = f"{type(exc).__name__}: {exc}"
    problem = _reachable[kind]
    if problem is not None:
        pytest.fail(
            f"{kind} at {url} cannot be reached ({problem}). Start it, or set "
            f"ORDERHUB_TEST_{kind.upper()}_URL; to leave these tests out on purpose, "
            'run pytest -m "not broker".',
            pytrace=False,
        )


@pytest.fixture(params=["redis", "rabbitmq"])
def target(request: pytest.FixtureRequest) -> BrokerTarget:
    kind: Kind = request.param
    url = REDIS_URL if kind == "redis" else RABBITMQ_URL
    require(kind, url)
    return BrokerTarget(kind=kind, url=url, prefix=f"orderhub-test-{secrets.token_hex(4)}")


def delete_queues(broker: dramatiq.Broker, prefix: str) -> None:
    """Remove every queue a test declared (main, delay and dead-letter queues)."""
    names = [f"{prefix}.{q}" for q in ("commands", "inbox")]
    if isinstance(broker, RedisBroker):
        broker.flush_all()
        namespace = broker.namespace
        for key in broker.client.scan_iter(f"{namespace}:{prefix}*"):
            broker.client.delete(key)
    elif isinstance(broker, RabbitmqBroker):
        channel = broker.channel
        for name in names:
            for suffix in ("", ".DQ", ".XQ"):
                channel.queue_delete(name + suffix)


@pytest.fixture
def cleanup() -> Iterator[list[tuple[dramatiq.Broker, str]]]:
    """Brokers (with their prefix) to clean up after the test."""
    brokers: list[tuple[dramatiq.Broker, str]] = []
    yield brokers
    for broker, prefix in brokers:
        try:
            delete_queues(broker, prefix)
        finally:
            broker.close()
