"""The composition root, the clock and the ids."""

from __future__ import annotations

import uuid
from datetime import UTC
from pathlib import Path

import pytest
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from structlog.testing import capture_logs

from orderhub.adapters.clock import SystemClock, uuid7
from orderhub.adapters.persistence import SqlUnitOfWorkFactory
from orderhub.adapters.persistence.budgets import SqlRateBudget
from orderhub.adapters.queue.dramatiq_queue import DramatiqQueue
from orderhub.adapters.queue.inprocess import InProcessQueue
from orderhub.application.hub import RetryPolicy
from orderhub.bootstrap import aclose, bootstrap, build_registry, ready_checks, resources
from orderhub.channels.budget import LocalRateBudget
from orderhub.channels.registry import PluginLoadError
from orderhub.config import Settings, load_settings
from orderhub.testing.fakes import FakeUnitOfWorkFactory

from .support import ACCOUNT, CHANNEL, Script, ScriptedAccount, registry


def settings_with(**env: str) -> Settings:
    return load_settings(environ={f"ORDERHUB_{k.upper()}": v for k, v in env.items()})


def test_system_clock_is_timezone_aware_utc() -> None:
    now = SystemClock().now()

    assert now.tzinfo is not None
    assert now.utcoffset() == UTC.utcoffset(now)


def test_ids_are_uuid7_strings_that_sort_by_creation() -> None:
    ids = [uuid7() for _ in range(1000)]

    assert all(uuid.UUID(i).version == 7 for i in ids)
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)


async def test_embedded_settings_build_an_in_process_queue_and_the_policy() -> None:
    settings = settings_with(
        broker__concurrency="3", retry__base_seconds="0.5", retry__max_attempts="4"
    )
    script = Script()

    hub = bootstrap(settings, uow=FakeUnitOfWorkFactory(), registry=registry(script))
    try:
        assert isinstance(hub.queue, InProcessQueue)
        assert hub.queue.concurrency == 3
        assert hub.retry == RetryPolicy(base_seconds=0.5, max_attempts=4)
        assert isinstance(hub.clock, SystemClock)
        assert uuid.UUID(hub.ids()).version == 7
        assert hub.channels.account(CHANNEL, ACCOUNT)
    finally:
        await aclose(hub)


@pytest.mark.parametrize(
    ("kind", "url", "broker_type"),
    [
        ("redis", "redis://127.0.0.1:6379/15", RedisBroker),
        ("rabbitmq", "amqp://guest:guest@127.0.0.1:5672/", RabbitmqBroker),
    ],
)
async def test_external_brokers_build_a_dramatiq_queue_without_connecting(
    kind: str, url: str, broker_type: type
) -> None:
    settings = settings_with(broker__kind=kind, broker__url=url, broker__queue_prefix="t")

    hub = bootstrap(settings, uow=FakeUnitOfWorkFactory(), registry=registry(Script()))
    try:
        assert isinstance(hub.queue, DramatiqQueue)
        assert isinstance(hub.queue.broker, broker_type)
        assert hub.queue.actors.dispatch.queue_name == "t.commands"
    finally:
        await aclose(hub)


async def test_a_given_queue_and_clock_are_used_and_the_queue_is_not_closed() -> None:
    queue = InProcessQueue()
    clock = SystemClock()
    hub = bootstrap(
        settings_with(),
        queue=queue,
        clock=clock,
        uow=FakeUnitOfWorkFactory(),
        registry=registry(Script()),
    )
    assert hub.queue is queue
    assert hub.clock is clock
    await queue.start(hub)

    await aclose(hub)

    assert queue.started  # the caller owns it
    await queue.stop()


async def test_aclose_closes_accounts_and_the_owned_queue_once() -> None:
    reg = registry(Script())
    hub = bootstrap(settings_with(), uow=FakeUnitOfWorkFactory(), registry=reg)
    assert isinstance(hub.queue, InProcessQueue)
    await hub.queue.start(hub)
    account = hub.channels.account(CHANNEL, ACCOUNT)
    assert isinstance(account, ScriptedAccount)

    await aclose(hub)
    await aclose(hub)  # harmless

    assert account.closed
    assert not hub.queue.started
    with pytest.raises(LookupError):
        resources(hub)


async def test_the_default_unit_of_work_is_sql_on_the_configured_database(tmp_path: Path) -> None:
    settings = settings_with(database__url=f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}")

    hub = bootstrap(settings, registry=registry(Script()))
    try:
        assert isinstance(hub.uow, SqlUnitOfWorkFactory)
        checks = dict([await check() for check in ready_checks(hub)])
        assert checks == {"database": True, "broker": False}  # in-process queue not started
        assert isinstance(hub.queue, InProcessQueue)
        await hub.queue.start(hub)
        assert dict([await check() for check in ready_checks(hub)])["broker"] is True
    finally:
        await aclose(hub)


async def test_readiness_reports_an_unreachable_database() -> None:
    url = "postgresql+asyncpg://nobody:pw@127.0.0.1:9/none"  # nothing listens on port 9
    hub = bootstrap(settings_with(database__url=url), registry=registry(Script()))
    try:
        results = dict([await check() for check in ready_checks(hub)])
    finally:
        await aclose(hub)

    assert results["database"] is False


def test_registry_is_limited_to_the_enabled_channels() -> None:
    assert build_registry(settings_with(channels__enabled="[]")).plugins == {}


def test_enabled_channels_that_are_not_installed_are_refused() -> None:
    with pytest.raises(PluginLoadError, match="enabled channels not installed: nowhere"):
        build_registry(settings_with(channels__enabled="nowhere"))


async def test_every_account_spends_from_the_databases_shared_budget(tmp_path: Path) -> None:
    settings = settings_with(database__url=f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}")
    script = Script()
    reg = registry(script, "a", "b")
    before = [account.services.budget for account in reg.accounts()]
    hub = bootstrap(settings, registry=reg)
    try:
        budgets = [account.services.budget for account in hub.channels.accounts()]
        shared = budgets[0]
        assert isinstance(shared, SqlRateBudget)
        assert all(b is shared for b in budgets)  # one budget, the database's, for all
        assert all(b is not shared for b in before)  # each counted alone before binding
    finally:
        await aclose(hub)


async def test_a_hub_on_a_fake_unit_of_work_counts_in_this_process_and_notes_health() -> None:
    reg = registry(Script(), "a", "b")
    uow = FakeUnitOfWorkFactory()
    hub = bootstrap(settings_with(), uow=uow, registry=reg)
    try:
        [a, b] = hub.channels.accounts()
        assert isinstance(a.services.budget, LocalRateBudget)
        await b.services.health.note(b.channel, b.name, "token", ok=False, detail="503")
        await aclose(hub)  # writes what was noted
        async with uow() as tx:
            [noted] = await tx.health.all()
        assert (noted.account, noted.item, noted.ok, noted.detail) == ("b", "token", False, "503")
    finally:
        await aclose(hub)


async def test_warming_the_channels_logs_a_failure_and_warms_the_rest() -> None:
    reg = registry(Script(), "a", "b")
    warmed: list[str] = []
    for account in reg.accounts():

        async def warm(name: str = account.name) -> None:
            if name == "a":
                raise RuntimeError("carriers unavailable")
            warmed.append(name)

        account.warm = warm  # type: ignore[method-assign]
    with capture_logs() as logs:
        await reg.warm()
    assert warmed == ["b"]
    [failure] = [e for e in logs if e["event"] == "channel.warm_failed"]
    assert failure["account"] == "a"
    assert "carriers unavailable" in failure["error"]
