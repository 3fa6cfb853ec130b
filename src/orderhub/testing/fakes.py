"""In-memory implementations of the ports: the service layer in milliseconds, no I/O.

They keep the semantics that matter to the use cases: a unit of work sees a snapshot and
commits all or nothing, optimistic concurrency on orders, dedupe in the inbox, a gapless
feed. Objects are deep-copied in and out, as a database would."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self

from orderhub.application.ports import (
    ChannelCommand,
    CommandState,
    FeedEntry,
    InboxMessage,
    InboxState,
    OrderFilter,
    StoredResponse,
)
from orderhub.domain.errors import ConcurrencyConflict
from orderhub.domain.model import Order


class FixedClock:
    """A clock that moves only when told."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


class SequentialIds:
    """Readable, ordered ids: ``id-0001``, ``id-0002``..."""

    def __init__(self, prefix: str = "id") -> None:
        self._counter = itertools.count(1)
        self.prefix = prefix

    def __call__(self) -> str:
        return f"{self.prefix}-{next(self._counter):04d}"


@dataclass
class FakeDatabase:
    """What the fake units of work share: the committed state."""

    orders: dict[str, Order] = field(default_factory=dict)
    commands: dict[str, ChannelCommand] = field(default_factory=dict)
    inbox: dict[str, InboxMessage] = field(default_factory=dict)
    feed: list[FeedEntry] = field(default_factory=list)
    cursors: dict[tuple[str, str, str], str] = field(default_factory=dict)
    idempotency: dict[str, StoredResponse] = field(default_factory=dict)
    commits: int = 0


class _Orders:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def get(self, order_id: str) -> Order | None:
        order = self._uow.db.orders.get(order_id)
        return self._uow.track(copy.deepcopy(order)) if order else None

    async def get_by_channel_id(
        self, channel: str, account: str, channel_order_id: str
    ) -> Order | None:
        for order in self._uow.db.orders.values():
            if (order.channel, order.account, order.channel_order_id) == (
                channel,
                account,
                channel_order_id,
            ):
                return self._uow.track(copy.deepcopy(order))
        return None

    def add(self, order: Order) -> None:
        self._uow.new_orders.append(order)
        self._uow.track(order)

    async def list(
        self, filters: OrderFilter, *, after: tuple[datetime, str] | None, limit: int
    ) -> Sequence[Order]:
        def keep(order: Order) -> bool:
            return (
                (filters.status is None or order.status is filters.status)
                and (filters.channel is None or order.channel == filters.channel)
                and (filters.account is None or order.account == filters.account)
                and (filters.updated_after is None or order.updated_at > filters.updated_after)
                and (
                    filters.ship_by_before is None
                    or (order.ship_by is not None and order.ship_by < filters.ship_by_before)
                )
                and (after is None or (order.updated_at, order.id) > after)
            )

        found = sorted(
            (o for o in self._uow.db.orders.values() if keep(o)), key=lambda o: (o.updated_at, o.id)
        )
        return [copy.deepcopy(o) for o in found[:limit]]


class _Commands:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    def add(self, command: ChannelCommand) -> None:
        self._uow.pending_commands[command.id] = command

    async def get(self, command_id: str, *, for_update: bool = False) -> ChannelCommand | None:
        found = self._uow.db.commands.get(command_id)
        return copy.deepcopy(found) if found else None

    async def for_order(self, order_id: str) -> Sequence[ChannelCommand]:
        found = [c for c in self._uow.db.commands.values() if c.order_id == order_id]
        return [copy.deepcopy(c) for c in sorted(found, key=lambda c: c.created_at)]

    async def save(self, command: ChannelCommand) -> None:
        self._uow.pending_commands[command.id] = command

    async def due(self, *, now: datetime, created_before: datetime, limit: int) -> Sequence[str]:
        return [
            c.id
            for c in self._uow.db.commands.values()
            if c.state is CommandState.PENDING
            and c.created_at < created_before
            and (c.next_attempt_at is None or c.next_attempt_at <= now)
            and (c.lease_until is None or c.lease_until <= now)
        ][:limit]

    async def failed(self, *, limit: int) -> Sequence[ChannelCommand]:
        failed = [c for c in self._uow.db.commands.values() if c.state is CommandState.FAILED]
        return [copy.deepcopy(c) for c in failed[:limit]]


class _Inbox:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def add(self, message: InboxMessage) -> bool:
        keys = {m.dedupe_key for m in self._uow.db.inbox.values()}
        keys |= {m.dedupe_key for m in self._uow.pending_messages.values()}
        if message.dedupe_key in keys:
            return False
        self._uow.pending_messages[message.id] = message
        return True

    async def get(self, message_id: str, *, for_update: bool = False) -> InboxMessage | None:
        found = self._uow.db.inbox.get(message_id)
        return copy.deepcopy(found) if found else None

    async def id_for(self, dedupe_key: str) -> str | None:
        stored = [*self._uow.db.inbox.values(), *self._uow.pending_messages.values()]
        return next((m.id for m in stored if m.dedupe_key == dedupe_key), None)

    async def save(self, message: InboxMessage) -> None:
        self._uow.pending_messages[message.id] = message

    async def unprocessed(self, *, received_before: datetime, limit: int) -> Sequence[str]:
        return [
            m.id
            for m in self._uow.db.inbox.values()
            if m.state is InboxState.RECEIVED and m.received_at < received_before
        ][:limit]

    async def failed(self, *, limit: int) -> Sequence[InboxMessage]:
        failed = [m for m in self._uow.db.inbox.values() if m.state is InboxState.FAILED]
        return [copy.deepcopy(m) for m in failed[:limit]]


class _Feed:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def read(self, *, after: int, limit: int) -> Sequence[FeedEntry]:
        return [e for e in self._uow.db.feed if e.seq > after][:limit]


class _Cursors:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def get(self, channel: str, account: str, name: str) -> str | None:
        return self._uow.pending_cursors.get(
            (channel, account, name), self._uow.db.cursors.get((channel, account, name))
        )

    async def set(self, channel: str, account: str, name: str, value: str) -> None:
        self._uow.pending_cursors[(channel, account, name)] = value


class _Idempotency:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def get(self, key: str) -> StoredResponse | None:
        return self._uow.db.idempotency.get(key)

    async def put(self, response: StoredResponse) -> None:
        self._uow.pending_idempotency[response.key] = response


class FakeUnitOfWork:
    def __init__(self, db: FakeDatabase, clock: FixedClock | None = None) -> None:
        self.db = db
        self.clock = clock or FixedClock()
        self.orders = _Orders(self)
        self.commands = _Commands(self)
        self.inbox = _Inbox(self)
        self.feed = _Feed(self)
        self.cursors = _Cursors(self)
        self.idempotency = _Idempotency(self)
        self.seen: dict[str, tuple[Order, int]] = {}
        self.new_orders: list[Order] = []
        self.pending_commands: dict[str, ChannelCommand] = {}
        self.pending_messages: dict[str, InboxMessage] = {}
        self.pending_cursors: dict[tuple[str, str, str], str] = {}
        self.pending_idempotency: dict[str, StoredResponse] = {}
        self.recorded: list[tuple[str, Order | None, dict[str, Any]]] = []
        self.committed = False

    def track(self, order: Order) -> Order:
        self.seen[order.id] = (order, order.version)
        return order

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.committed:
            await self.rollback()

    def record(self, event_type: str, *, order: Order | None, data: dict[str, Any]) -> None:
        self.recorded.append((event_type, order, data))

    async def commit(self) -> None:
        db = self.db
        for order in self.new_orders:
            key = (order.channel, order.account, order.channel_order_id)
            if any((o.channel, o.account, o.channel_order_id) == key for o in db.orders.values()):
                raise ConcurrencyConflict(f"order {key} was created concurrently")
        for order_id, (_order, version) in self.seen.items():
            stored = db.orders.get(order_id)
            if stored is not None and stored.version != version:
                raise ConcurrencyConflict(f"order {order_id} changed since it was read")
        now = self.clock.now()
        for order, _ in self.seen.values():
            for event in order.events:
                self._append_feed(event.type.value, order, event.data, now)
            changed = bool(order.events) or order in self.new_orders
            order.events.clear()
            if changed:
                order.version += 1
                db.orders[order.id] = copy.deepcopy(order)
        for event_type, maybe_order, data in self.recorded:
            self._append_feed(event_type, maybe_order, data, now)
        db.commands.update(copy.deepcopy(self.pending_commands))
        db.inbox.update(copy.deepcopy(self.pending_messages))
        db.cursors.update(self.pending_cursors)
        db.idempotency.update(self.pending_idempotency)
        db.commits += 1
        self.committed = True

    def _append_feed(
        self, event_type: str, order: Order | None, data: dict[str, Any], now: datetime
    ) -> None:
        self.db.feed.append(
            FeedEntry(
                seq=len(self.db.feed) + 1,
                type=event_type,
                order_id=order.id if order else None,
                channel=order.channel if order else None,
                occurred_at=now,
                data=copy.deepcopy(data),
            )
        )

    async def rollback(self) -> None:
        self.committed = True  # nothing of this unit of work reaches the database


class FakeUnitOfWorkFactory:
    def __init__(self, db: FakeDatabase | None = None, clock: FixedClock | None = None) -> None:
        self.db = db or FakeDatabase()
        self.clock = clock

    def __call__(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self.db, self.clock)


@dataclass
class RecordingQueue:
    """A CommandQueue that remembers what it was given; tests drain it by hand."""

    commands: list[tuple[str, float]] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)

    def enqueue_command(self, command_id: str, *, delay_seconds: float = 0) -> None:
        self.commands.append((command_id, delay_seconds))

    def enqueue_inbox(self, message_id: str) -> None:
        self.messages.append(message_id)
