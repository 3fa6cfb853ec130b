"""The hub the kit drives: the service layer on the in-memory fakes, the adapter's plugin
opened on the driver's account, the queue drained by hand (no worker, no sleep)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from orderhub.application.hub import Hub
from orderhub.application.ports import ChannelCommand, CommandState, FeedEntry, InboxState
from orderhub.application.services import intake
from orderhub.application.services.dispatch import Dispatched, dispatch_command
from orderhub.channels.registry import ChannelRegistry, LoadedPlugin
from orderhub.channels.spi import ChannelAccount
from orderhub.domain.model import Order
from orderhub.testing.conformance.driver import ConformanceDriver, Delivery
from orderhub.testing.fakes import FakeUnitOfWorkFactory, FixedClock, RecordingQueue, SequentialIds

START: Final = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
MAX_ROUNDS: Final = 100  # a settle that has not settled by then loops: fail, do not hang


class NotSettled(AssertionError):
    """The hub kept finding work: the kit stops rather than loop forever."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Dispatch:
    command: ChannelCommand
    outcome: Dispatched


class HubRig:
    """One hub, one account of the adapter under test. Open it with :meth:`open`; close
    it with :meth:`aclose` (the account's HTTP clients)."""

    def __init__(self, driver: ConformanceDriver, *, seed: int = 0) -> None:
        self.driver = driver
        config = driver.account_config()
        loaded = LoadedPlugin(plugin=driver.plugin, distribution="conformance", version="0")
        self.registry = ChannelRegistry({driver.plugin.name: loaded}, [config])
        self.channel = config.channel
        self.account_name = config.name
        self.clock = FixedClock(START)
        self.uow = FakeUnitOfWorkFactory(clock=self.clock)
        self.queue = RecordingQueue()
        self.hub = Hub(
            uow=self.uow,
            channels=self.registry,
            clock=self.clock,
            ids=SequentialIds("hub"),
            queue=self.queue,
            rng=random.Random(seed),
        )
        self._delivered: dict[str, int] = {}  # channel order id -> messages delivered
        self._again = 0

    @property
    def account(self) -> ChannelAccount:
        return self.registry.account(self.channel, self.account_name)

    async def aclose(self) -> None:
        await self.registry.aclose()

    # --- intake ---------------------------------------------------------------------------

    async def deliver(self, deliveries: Sequence[Delivery], *, again: bool = False) -> None:
        """Hand messages to the intake as the webhook door (or a job) does, then process
        them. ``again``: each under a new dedupe key, as a channel that sends the same
        content as a new message (at-least-once delivery, a second poll)."""
        for delivery in deliveries:
            key = delivery.key
            if again:
                self._again += 1
                key = f"conformance-again-{self._again}"
            await intake.store_message(
                self.hub,
                channel=self.channel,
                account=self.account_name,
                body=delivery.body,
                headers=dict(delivery.headers),
                source=delivery.source,
                key=key,
            )
        await self.process_inbox()

    async def deliver_new(self, channel_order_id: str) -> list[Delivery]:
        """Deliver the order's messages the hub has not been given yet; those messages."""
        messages = list(await self.driver.messages(channel_order_id))
        new = messages[self._delivered.get(channel_order_id, 0) :]
        self._delivered[channel_order_id] = len(messages)
        await self.deliver(new)
        return new

    async def process_inbox(self) -> None:
        for _ in range(MAX_ROUNDS * 10):
            if not self.queue.messages:
                return
            await intake.process_message(self.hub, self.queue.messages.pop(0))
        raise NotSettled(f"the inbox kept growing: {len(self.queue.messages)} still queued")

    async def refresh(self, channel_order_id: str) -> Delivery | None:
        """The order as the channel shows it now, read through the account's ``refresh``
        hook (None where the adapter has none): a message that carries its state."""
        order = self.order(channel_order_id)
        message = await self.account.refresh(order)
        if message is None:
            return None
        return Delivery(
            body=message.body, headers=message.headers, source="refresh", key=message.dedupe_key
        )

    def failed_messages(self) -> list[str]:
        inbox = self.uow.db.inbox.values()
        return [f"{m.source}: {m.last_error}" for m in inbox if m.state is InboxState.FAILED]

    # --- commands -------------------------------------------------------------------------

    async def dispatch_queued(self) -> list[Dispatch]:
        """Dispatch what is queued now, in queue order (a retry queued meanwhile waits)."""
        batch = [command_id for command_id, _ in self.queue.commands]
        self.queue.commands.clear()
        done = []
        for command_id in batch:
            outcome = await dispatch_command(self.hub, command_id)
            done.append(Dispatch(command=self.uow.db.commands[command_id], outcome=outcome))
        await self.process_inbox()
        return done

    async def settle(self, channel_order_id: str, *, wait_for_retries: bool = True) -> None:
        """Until nothing moves: deliver the channel's new messages, process the inbox,
        dispatch the queued commands. ``wait_for_retries``: a command scheduled for later
        is run by moving the hub's clock to its time (never by sleeping)."""
        for _ in range(MAX_ROUNDS):
            await self.deliver_new(channel_order_id)
            if self.queue.commands:
                await self.dispatch_queued()
                continue
            now = self.clock.now()
            later = [
                c
                for c in self.uow.db.commands.values()
                if c.state is CommandState.PENDING
                and c.held_by is None
                and c.next_attempt_at is not None
                and c.next_attempt_at > now
            ]
            if not (wait_for_retries and later):
                return
            first = min(later, key=lambda c: c.next_attempt_at or now)
            self.clock.current = first.next_attempt_at or now
            self.queue.commands.append((first.id, 0.0))
        raise NotSettled(f"order {channel_order_id} did not settle in {MAX_ROUNDS} rounds")

    # --- what the hub holds ---------------------------------------------------------------

    def find(self, channel_order_id: str) -> Order | None:
        for order in self.uow.db.orders.values():
            if order.channel_order_id == channel_order_id:
                return order
        return None

    def order(self, channel_order_id: str) -> Order:
        order = self.find(channel_order_id)
        if order is None:
            raise AssertionError(
                f"the hub has no order {channel_order_id}; failed inbox messages: "
                f"{self.failed_messages() or 'none'}"
            )
        return order

    def commands(self, order: Order) -> list[ChannelCommand]:
        found = [c for c in self.uow.db.commands.values() if c.order_id == order.id]
        return sorted(found, key=lambda c: c.seq)

    def feed(self, order: Order) -> list[FeedEntry]:
        return [e for e in self.uow.db.feed if e.order_id == order.id]


def fingerprint(order: Order) -> dict[str, Any]:
    """What must converge: status, the channel's status, line counters, units, the
    channel's cancellations and returns (hub ids left out: two hubs make their own)."""
    return {
        "status": order.status.value,
        "channel_status": order.channel_status,
        "released": order.released,
        "lines": {
            line.channel_line_id: (
                line.quantity,
                line.accepted,
                line.rejected,
                line.shipped,
                line.delivered,
                line.cancelled,
                sorted((u.channel_unit_id, u.serial_number or "", u.shipped) for u in line.units),
            )
            for line in order.lines
        },
        "cancellations": sorted(
            (c.channel_cancellation_id or "", c.initiator.value, c.reason.value, c.state.value)
            for c in order.cancellations
        ),
        "returns": sorted(
            (r.channel_return_id or "", r.initiator.value, r.reason.value, r.state.value)
            for r in order.returns
        ),
    }
