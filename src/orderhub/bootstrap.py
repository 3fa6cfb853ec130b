"""The composition root: the one place that chooses adapters. The web app, the dramatiq
worker, the scheduler and the CLI all get their :class:`Hub` from :func:`bootstrap` and
release it with :func:`aclose`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from orderhub.adapters.clock import SystemClock, uuid7
from orderhub.adapters.persistence import (
    PoolOptions,
    SqlUnitOfWorkFactory,
    create_engine,
    ping,
    sql_inbox_intake,
)
from orderhub.adapters.persistence.budgets import SqlRateBudget
from orderhub.adapters.persistence.health import UnitOfWorkAccountHealth
from orderhub.adapters.queue.dramatiq_queue import DramatiqQueue, make_broker, middleware_stack
from orderhub.adapters.queue.inprocess import InProcessQueue
from orderhub.application.hub import Hub
from orderhub.application.ports import Clock, CommandQueue, InboxIntake, UnitOfWorkFactory
from orderhub.channels.budget import LocalRateBudget
from orderhub.channels.registry import ChannelRegistry, discover
from orderhub.channels.spi import AccountServices
from orderhub.config import Settings
from orderhub.logging import get_logger

__all__ = [
    "Resources",
    "aclose",
    "bootstrap",
    "build_queue",
    "build_registry",
    "loop_publishing_url",
    "ready_checks",
]

log = get_logger(__name__)

ReadyCheck = Callable[[], Awaitable[tuple[str, bool]]]


@dataclass(kw_only=True, slots=True)
class Resources:
    """What :func:`aclose` releases, and what readiness probes look at."""

    settings: Settings
    engine: AsyncEngine | None = None  # None when a unit-of-work factory was given
    owned_queue: bool = False
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


_resources: dict[int, tuple[Hub, Resources]] = {}


def bootstrap(
    settings: Settings,
    *,
    queue: CommandQueue | None = None,
    clock: Clock | None = None,
    registry: ChannelRegistry | None = None,
    uow: UnitOfWorkFactory | None = None,
) -> Hub:
    """Build the hub from ``settings``; any adapter given replaces the configured one.

    Nothing connects here (engines and brokers connect lazily), so this is safe to call
    before an event loop runs. ``uow`` is for tests that bring a fake unit of work."""
    resources = Resources(settings=settings)
    the_clock = clock or SystemClock()
    intake: InboxIntake | None = None
    if uow is None:
        db = settings.database
        engine = create_engine(
            db.url,
            pool=PoolOptions(
                size=db.pool_size,
                max_overflow=db.max_overflow,
                pre_ping=db.pool_pre_ping,
                recycle_seconds=db.pool_recycle_seconds,
                connect_timeout_seconds=db.connect_timeout_seconds,
            ),
        )
        resources.engine = engine
        intake = sql_inbox_intake(engine)
        directory = settings.documents.directory
        uow = SqlUnitOfWorkFactory(
            engine,
            clock=the_clock,
            documents_directory=Path(directory).expanduser() if directory else None,
        )
    if registry is None:
        registry = build_registry(settings)
    if queue is None:
        queue = build_queue(settings)
        resources.owned_queue = True
    hub = Hub(
        uow=uow,
        channels=registry,
        clock=the_clock,
        ids=uuid7,
        queue=queue,
        retry=settings.retry.policy(),
        invoices=settings.invoices.policy(settings.documents),
        intake=intake,
    )
    _resources[id(hub)] = (hub, resources)
    # without an engine (a test's own unit of work) the budget is this process's alone
    budget = (
        LocalRateBudget()
        if resources.engine is None
        else SqlRateBudget(resources.engine, the_clock)
    )
    health = UnitOfWorkAccountHealth(uow, the_clock)
    registry.bind(AccountServices(budget=budget, health=health))
    resources.closers.append(health.flush)  # the last notes, before the engine goes
    log.debug(
        "hub.bootstrapped",
        broker=settings.broker.kind,
        channels=sorted(registry.plugins),
        accounts=[f"{a.channel}/{a.name}" for a in registry.accounts()],
    )
    return hub


def build_registry(settings: Settings) -> ChannelRegistry:
    plugins = discover(enabled=settings.channels.enabled_names)
    return ChannelRegistry(plugins, settings.channels.account_configs())


def build_queue(settings: Settings) -> CommandQueue:
    """The queue for the configured broker kind (``embedded``: an in-process worker that
    the serving process starts with the hub; see ``orderhub serve``)."""
    broker = settings.broker
    policy = settings.retry.policy()
    if broker.kind == "embedded":
        return InProcessQueue(concurrency=broker.concurrency, retry=policy)
    assert broker.url is not None  # the config checks it
    return DramatiqQueue(
        make_broker(broker.kind, broker.url, middleware=middleware_stack(retry=policy)),
        queue_prefix=broker.queue_prefix,
        retry=policy,
        linger_seconds=broker.publish_linger_ms / 1000,
        redis_url=loop_publishing_url(settings),
    )


def loop_publishing_url(settings: Settings) -> str | None:
    """The Redis URL a queue publishes to from its event loops (``[broker]
    publish_on_loop``), None for a publisher thread."""
    broker = settings.broker
    return broker.url if broker.kind == "redis" and broker.publish_on_loop else None


def resources(hub: Hub) -> Resources:
    try:
        return _resources[id(hub)][1]
    except KeyError:
        raise LookupError("this hub was not built by bootstrap() or is closed") from None


def ready_checks(hub: Hub) -> tuple[ReadyCheck, ...]:
    """Readiness probes for ``/readyz``: the database and the broker, each (name, reachable)."""
    res = resources(hub)
    checks: list[ReadyCheck] = []
    if res.engine is not None:
        engine = res.engine

        async def database() -> tuple[str, bool]:
            return "database", await ping(engine)

        checks.append(database)
    queue = hub.queue

    async def broker() -> tuple[str, bool]:
        if isinstance(queue, DramatiqQueue):
            try:
                await asyncio.wait_for(asyncio.to_thread(queue.ping), timeout=5.0)
            except Exception:
                return "broker", False
            return "broker", True
        if isinstance(queue, InProcessQueue):
            return "broker", queue.started
        return "broker", True

    checks.append(broker)
    return tuple(checks)


async def aclose(hub: Hub) -> None:
    """Release what :func:`bootstrap` opened: channel clients, the queue it built, the
    database engine. Safe to call twice."""
    entry = _resources.pop(id(hub), None)
    if entry is None:
        return
    _, res = entry
    for closer in reversed(res.closers):
        await _quietly("closer", closer())
    await _quietly("channels", hub.channels.aclose())
    if res.owned_queue:
        queue = hub.queue
        if isinstance(queue, InProcessQueue):
            await _quietly("queue", queue.stop())
        elif isinstance(queue, DramatiqQueue):
            await _quietly("queue", asyncio.to_thread(queue.close))
    if res.engine is not None:
        await _quietly("database", res.engine.dispose())


async def _quietly(what: str, awaitable: Awaitable[Any]) -> None:
    try:
        await awaitable
    except Exception:
        log.exception("hub.close_failed", what=what)
