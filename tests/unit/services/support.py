"""A hub on fakes with in-memory test channel accounts: the service layer, no I/O."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from orderhub.application.hub import Hub, RetryPolicy
from orderhub.application.ports import ChannelCommand
from orderhub.application.services.intake import process_message, store_message
from orderhub.channels.registry import ChannelRegistry, LoadedPlugin
from orderhub.channels.spi import AccountConfig
from orderhub.domain.model import Order
from orderhub.testing.channel import TestChannelAccount, plugin
from orderhub.testing.fakes import (
    FakeDatabase,
    FakeUnitOfWork,
    FakeUnitOfWorkFactory,
    FixedClock,
    RecordingQueue,
    SequentialIds,
)

ACCOUNT = "main"


class CheckingQueue(RecordingQueue):
    """Also proves that what is enqueued was committed first."""

    def __init__(self, db: FakeDatabase) -> None:
        super().__init__()
        self.db = db

    def enqueue_command(self, command_id: str, *, delay_seconds: float = 0) -> None:
        assert command_id in self.db.commands, f"command {command_id} enqueued before commit"
        super().enqueue_command(command_id, delay_seconds=delay_seconds)

    def enqueue_inbox(self, message_id: str, *, delay_seconds: float = 0) -> None:
        assert message_id in self.db.inbox, f"message {message_id} enqueued before commit"
        super().enqueue_inbox(message_id, delay_seconds=delay_seconds)


class RacingUnitOfWork(FakeUnitOfWork):
    """Another writer commits to every order this unit of work read, just before it commits."""

    def __init__(self, factory: RacingFactory) -> None:
        super().__init__(factory.db, factory.clock)
        self.factory = factory

    async def commit(self) -> None:
        if self.factory.races > 0 and self.seen:
            self.factory.races -= 1
            for order_id in self.seen:
                if order_id in self.db.orders:
                    self.db.orders[order_id].version += 1
        await super().commit()


class RacingFactory(FakeUnitOfWorkFactory):
    def __init__(self, db: FakeDatabase, clock: FixedClock, *, races: int = 0) -> None:
        super().__init__(db, clock)
        self.races = races

    def __call__(self, *, read_only: bool = False) -> FakeUnitOfWork:
        return RacingUnitOfWork(self)


@dataclass
class World:
    hub: Hub
    db: FakeDatabase
    queue: CheckingQueue
    clock: FixedClock
    uow: RacingFactory
    registry: ChannelRegistry
    messages: int = field(default=0)

    def account(self, name: str = ACCOUNT) -> TestChannelAccount:
        account = self.registry.account("testchannel", name)
        assert isinstance(account, TestChannelAccount)
        return account

    def order(self, channel_order_id: str = "CO-1") -> Order:
        found = [o for o in self.db.orders.values() if o.channel_order_id == channel_order_id]
        assert len(found) == 1, found
        return found[0]

    def commands(self) -> list[ChannelCommand]:
        return sorted(self.db.commands.values(), key=lambda c: c.id)

    def feed_types(self) -> list[str]:
        return [entry.type for entry in self.db.feed]

    async def deliver_webhook(self, doc: dict[str, Any], *, webhook_id: str | None = None) -> str:
        """Store and process one message as the webhook route and the worker would."""
        self.messages += 1
        stored = await store_message(
            self.hub,
            channel="testchannel",
            account=ACCOUNT,
            body=json.dumps(doc).encode(),
            headers={"webhook-id": webhook_id or f"wh-{self.messages}"},
        )
        await process_message(self.hub, stored.message_id)
        return stored.message_id

    async def receive(self, doc: dict[str, Any]) -> Order:
        await self.deliver_webhook(doc)
        self.queue.commands.clear()
        self.queue.messages.clear()
        return self.order(doc["id"])


def make_world(
    profile: str = "topi",
    *,
    retry: RetryPolicy | None = None,
    accounts: Sequence[tuple[str, dict[str, Any]]] = (),
    **settings: Any,
) -> World:
    configs = [
        AccountConfig(
            channel="testchannel", name=ACCOUNT, settings={"profile": profile, **settings}
        ),
        *(
            AccountConfig(channel="testchannel", name=name, settings=extra)
            for name, extra in accounts
        ),
    ]
    registry = ChannelRegistry(
        {"testchannel": LoadedPlugin(plugin=plugin, distribution="orderhub", version="test")},
        configs,
    )
    clock = FixedClock()
    db = FakeDatabase()
    uow = RacingFactory(db, clock)
    queue = CheckingQueue(db)
    hub = Hub(
        uow=uow,
        channels=registry,
        clock=clock,
        ids=SequentialIds(),
        queue=queue,
        retry=retry or RetryPolicy(),
        rng=random.Random(7),
    )
    return World(hub=hub, db=db, queue=queue, clock=clock, uow=uow, registry=registry)


def order_doc(
    *,
    id: str = "CO-1",
    status: str = "created",
    lines: Sequence[dict[str, Any]] = (
        {"id": "L1", "title": "Phone", "quantity": 2, "sku": "SKU-1", "price": 19900},
        {"id": "L2", "title": "Case", "quantity": 1, "sku": "SKU-2", "price": 1900},
    ),
    **extra: Any,
) -> dict[str, Any]:
    return {"id": id, "status": status, "lines": list(lines), **extra}


def line_ids(order: Order) -> dict[str, str]:
    """channel line id -> hub line id"""
    return {line.channel_line_id: line.id for line in order.lines}
