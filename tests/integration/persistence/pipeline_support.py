"""A hub over the SQL unit of work with the in-memory test channel, for the pipeline tests
(fencing, per-order ordering, sweeping, retention).

The hub and its units of work share one :class:`FixedClock`: leases, backoff, the
sweeper's grace and retention ages move only when a test advances it. Nothing here waits
on wall-clock speed; waits on conditions are bounded by generous timeouts."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

from sqlalchemy.ext.asyncio import AsyncEngine

from orderhub.adapters.persistence import SqlUnitOfWorkFactory, sql_inbox_intake
from orderhub.application.hub import Hub, RetryPolicy
from orderhub.application.ports import ChannelCommand, FeedEntry, InboxMessage
from orderhub.application.services.intake import Processed, process_message, store_message
from orderhub.channels.registry import ChannelRegistry, LoadedPlugin
from orderhub.channels.spi import AccountConfig
from orderhub.domain.model import ChannelSnapshot
from orderhub.testing.channel import TestChannelAccount, plugin
from orderhub.testing.fakes import FixedClock, RecordingQueue, SequentialIds

CHANNEL: Final = "testchannel"
ACCOUNT: Final = "main"
WAIT_SECONDS: Final = 30.0  # generous: only reached when something is broken

DOC: Final[Mapping[str, Any]] = {
    "id": "T-1001",
    "status": "created",
    "lines": [
        {"id": "L1", "title": "Phone", "quantity": 2, "sku": "SKU-1", "price": 19900},
        {"id": "L2", "title": "Case", "quantity": 1, "sku": "SKU-2", "price": 1900},
    ],
    "currency": "EUR",
    "placed_at": "2026-01-01T11:00:00Z",
    "shipping_address": {
        "name": "Ada Lovelace",
        "line1": "Hauptstr. 1",
        "postal_code": "10115",
        "city": "Berlin",
        "country_code": "DE",
    },
}


def order_body(
    channel_order_id: str = "T-1001", *, status: str = "created", city: str = "Berlin"
) -> bytes:
    """A test channel intake document (see :mod:`orderhub.testing.channel`)."""
    address = {**cast(Mapping[str, Any], DOC["shipping_address"]), "city": city}
    return json.dumps(
        {**DOC, "id": channel_order_id, "status": status, "shipping_address": address}
    ).encode()


@dataclass
class World:
    hub: Hub
    clock: FixedClock
    queue: RecordingQueue
    account: TestChannelAccount

    async def receive(self, channel_order_id: str = "T-1001") -> str:
        """Store and process a new order's first webhook; the order's id."""
        stored = await store_message(
            self.hub,
            channel=CHANNEL,
            account=ACCOUNT,
            body=order_body(channel_order_id),
            headers={"webhook-id": f"wh-{channel_order_id}-new"},
        )
        result = await process_message(self.hub, stored.message_id)
        message = await self.message(stored.message_id)
        assert result is Processed.PROCESSED, message.last_error
        async with self.hub.uow() as uow:
            order = await uow.orders.get_by_channel_id(CHANNEL, ACCOUNT, channel_order_id)
        assert order is not None
        return order.id

    async def command(self, command_id: str) -> ChannelCommand:
        async with self.hub.uow() as uow:
            command = await uow.commands.get(command_id)
        assert command is not None, command_id
        return command

    async def commands_of(self, order_id: str) -> Sequence[ChannelCommand]:
        async with self.hub.uow() as uow:
            return await uow.commands.for_order(order_id)

    async def message(self, message_id: str) -> InboxMessage:
        async with self.hub.uow() as uow:
            message = await uow.inbox.get(message_id)
        assert message is not None, message_id
        return message

    async def feed(self) -> list[FeedEntry]:
        async with self.hub.uow() as uow:
            return list(await uow.feed.read(after=0, limit=100_000))

    async def command_events(self, command_id: str) -> list[FeedEntry]:
        return [
            e
            for e in await self.feed()
            if e.type.startswith("command.") and e.data.get("command_id") == command_id
        ]


def make_world(
    engine: AsyncEngine,
    *,
    retry: RetryPolicy | None = None,
    seed: int = 20260301,
) -> World:
    registry = ChannelRegistry(
        {CHANNEL: LoadedPlugin(plugin=plugin, distribution="orderhub", version="test")},
        [AccountConfig(channel=CHANNEL, name=ACCOUNT, settings={"profile": "topi"})],
    )
    clock = FixedClock()
    queue = RecordingQueue()
    hub = Hub(
        uow=SqlUnitOfWorkFactory(engine, clock=clock),
        channels=registry,
        clock=clock,
        ids=SequentialIds(),
        queue=queue,
        retry=retry or RetryPolicy(),
        rng=random.Random(seed),
        intake=sql_inbox_intake(engine),  # as bootstrap does: one round trip on PostgreSQL
    )
    account = registry.account(CHANNEL, ACCOUNT)
    assert isinstance(account, TestChannelAccount)
    return World(hub=hub, clock=clock, queue=queue, account=account)


class HeldIntake:
    """Wraps the account's ``snapshots`` (the mapping step of inbox processing): the n-th
    call waits for the n-th gate handed out by :meth:`hold_next` (calls beyond the gates
    handed out go straight through). Installed on the account instance with ``monkeypatch``."""

    def __init__(self, account: TestChannelAccount) -> None:
        self._inner: Callable[[bytes, Mapping[str, str]], Awaitable[Sequence[ChannelSnapshot]]] = (
            account.snapshots
        )
        self._gates: list[asyncio.Event] = []
        self.calls = 0
        self.arrived = asyncio.Event()

    def hold_next(self) -> asyncio.Event:
        gate = asyncio.Event()
        self._gates.append(gate)
        return gate

    async def __call__(self, body: bytes, headers: Mapping[str, str]) -> Sequence[ChannelSnapshot]:
        gate = self._gates.pop(0) if self._gates else None
        self.calls += 1
        self.arrived.set()
        if gate is not None:
            await gate.wait()
        return await self._inner(body, headers)

    async def wait_for_calls(self, count: int) -> None:
        async with asyncio.timeout(WAIT_SECONDS):
            while self.calls < count:
                self.arrived.clear()
                await self.arrived.wait()
