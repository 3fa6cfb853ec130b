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

from orderhub.application.access import AccountLimit, admitted
from orderhub.application.ports import (
    OUTCOME_FIELDS,
    ChannelCommand,
    CommandState,
    FeedEntry,
    HealthItem,
    InboxMessage,
    InboxState,
    OrderFilter,
    StoredDocument,
    StoredResponse,
)
from orderhub.domain.errors import ConcurrencyConflict
from orderhub.domain.model import Order
from orderhub.testing.fake_overview import FakeHealthStore, FakeOverview


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
    idempotency_at: dict[str, datetime] = field(default_factory=dict)
    refreshed: dict[str, datetime] = field(default_factory=dict)
    documents: dict[str, tuple[StoredDocument, bytes]] = field(default_factory=dict)
    health: dict[tuple[str, str, str], HealthItem] = field(default_factory=dict)
    last_seq: int = 0  # the feed counter
    inbox_seq: int = 0  # the inbox's arrival numbers
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
        self, filters: OrderFilter, *, after_seq: int | None, limit: int
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
                and (filters.attention is None or order.needs_attention is filters.attention)
                and (filters.fulfilled_by is None or order.fulfilled_by is filters.fulfilled_by)
                and admitted(filters.within, order.channel, order.account)
                and (after_seq is None or order.last_seq > after_seq)
            )

        found = sorted(
            (o for o in self._uow.db.orders.values() if keep(o)), key=lambda o: o.last_seq
        )
        return [self._uow.track(copy.deepcopy(o)) for o in found[:limit]]

    async def stale(self, *, older_than: datetime, limit: int) -> Sequence[Order]:
        def heard(order: Order) -> datetime:
            refreshed = self._uow.db.refreshed.get(order.id)
            return max(order.updated_at, refreshed) if refreshed else order.updated_at

        found = sorted(
            (
                o
                for o in self._uow.db.orders.values()
                if not o.status.is_terminal and heard(o) < older_than
            ),
            key=lambda o: (heard(o), o.id),
        )
        return [copy.deepcopy(o) for o in found[:limit]]

    async def mark_refreshed(self, order_id: str, at: datetime) -> None:
        self._uow.pending_refreshed[order_id] = at

    async def invoice_checks_due(self, *, now: datetime, limit: int) -> Sequence[str]:
        due = [
            (check, o.id)
            for o in self._uow.db.orders.values()
            if (check := o.next_invoice_check) is not None and check <= now
        ]
        return [order_id for _, order_id in sorted(due)[:limit]]


class _Commands:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    def add(self, command: ChannelCommand) -> None:
        self._uow.pending_commands[command.id] = command
        self._uow.new_command_ids.add(command.id)

    async def get(self, command_id: str, *, for_update: bool = False) -> ChannelCommand | None:
        found = self._uow.pending_commands.get(command_id) or self._uow.db.commands.get(command_id)
        return copy.deepcopy(found) if found else None

    async def for_order(self, order_id: str) -> Sequence[ChannelCommand]:
        found = {c.id: c for c in self._uow.db.commands.values() if c.order_id == order_id}
        found.update(
            {c.id: c for c in self._uow.pending_commands.values() if c.order_id == order_id}
        )
        return [copy.deepcopy(c) for c in sorted(found.values(), key=lambda c: c.seq)]

    async def claim(
        self, command_id: str, *, now: datetime, lease_until: datetime, max_attempts: int
    ) -> ChannelCommand | None:
        command = await self.get(command_id)
        if (
            command is None
            or command.state is not CommandState.PENDING
            or (command.next_attempt_at is not None and command.next_attempt_at > now)
            or (command.lease_until is not None and command.lease_until > now)
            or command.attempts >= max_attempts
            or any(
                c.seq < command.seq and not c.state.is_final
                for c in await self.for_order(command.order_id)
            )
        ):
            return None
        self._uow.fences[("command", command_id)] = command.fence  # a claim meanwhile: conflict
        command.attempts += 1
        command.fence += 1
        command.held_by = None
        command.lease_until = lease_until
        self._uow.pending_commands[command_id] = command
        return copy.deepcopy(command)

    async def next_seq(self, order_id: str) -> int:
        return max((c.seq for c in await self.for_order(order_id)), default=0) + 1

    async def save(self, command: ChannelCommand, *, fence: int | None = None) -> bool:
        if fence is not None:
            stored = self._uow.db.commands.get(command.id)
            if stored is None or stored.fence != fence or stored.state is not CommandState.PENDING:
                return False
            self._uow.fences[("command", command.id)] = fence
        self._uow.pending_commands[command.id] = command
        return True

    async def record_outcome(self, command: ChannelCommand, *, fence: int) -> bool:
        stored = self._uow.db.commands.get(command.id)
        if stored is None or stored.fence != fence or stored.state is not CommandState.PENDING:
            return False
        self._uow.fences[("command", command.id)] = fence
        kept = copy.deepcopy(stored)
        for name in OUTCOME_FIELDS:
            setattr(kept, name, copy.deepcopy(getattr(command, name)))
        self._uow.pending_commands[command.id] = kept
        return True

    async def due(self, *, now: datetime, queued_before: datetime, limit: int) -> Sequence[str]:
        commands = self._uow.db.commands.values()
        failed = {c.id for c in commands if c.state is CommandState.FAILED}
        blocked = {
            c.id
            for c in commands
            if any(
                e.order_id == c.order_id
                and e.seq < c.seq
                and e.state is CommandState.PENDING
                and (e.held_by is None or e.held_by not in failed)
                for e in commands
            )
        }
        found = [
            c
            for c in commands
            if c.state is CommandState.PENDING
            and c.id not in blocked
            and (c.held_by is None or c.held_by not in failed)
            and (c.next_attempt_at is None or c.next_attempt_at <= now)
            and (c.lease_until is None or c.lease_until <= now)
            and (c.queued_at is None or c.queued_at < queued_before)
        ]
        found.sort(key=lambda c: (c.queued_at or c.created_at, c.seq, c.id))
        return [c.id for c in found[:limit]]

    async def mark_queued(self, command_ids: Sequence[str], at: datetime) -> None:
        for command_id in command_ids:
            command = copy.deepcopy(self._uow.db.commands[command_id])
            command.queued_at = at
            self._uow.pending_commands[command_id] = command

    async def set_held(self, command: ChannelCommand, held_by: str | None) -> bool:
        stored = self._uow.pending_commands.get(command.id) or self._uow.db.commands.get(command.id)
        if stored is None or stored.fence != command.fence:
            return False
        if stored.state is not CommandState.PENDING:
            return False
        changed = copy.deepcopy(stored)
        changed.held_by = held_by
        self._uow.pending_commands[command.id] = changed
        return True

    async def failed(
        self, *, limit: int, within: AccountLimit | None = None
    ) -> Sequence[ChannelCommand]:
        failed = [
            c
            for c in self._uow.db.commands.values()
            if c.state is CommandState.FAILED and admitted(within, c.channel, c.account)
        ]
        return [copy.deepcopy(c) for c in failed[:limit]]

    async def held(
        self, *, limit: int, within: AccountLimit | None = None
    ) -> Sequence[ChannelCommand]:
        commands = self._uow.db.commands
        held = [
            c
            for c in commands.values()
            if c.state is CommandState.PENDING
            and c.held_by in commands
            and commands[c.held_by].state is CommandState.FAILED
            and admitted(within, c.channel, c.account)
        ]
        return [copy.deepcopy(c) for c in held[:limit]]

    async def prune(self, *, finished_before: datetime) -> int:
        gone = [
            c.id
            for c in self._uow.db.commands.values()
            if c.state.is_final and c.finished_at is not None and c.finished_at < finished_before
        ]
        self._uow.deleted_commands.update(gone)
        return len(gone)


class _Inbox:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def add(self, message: InboxMessage) -> bool:
        keys = {m.dedupe_key for m in self._uow.db.inbox.values()}
        keys |= {m.dedupe_key for m in self._uow.pending_messages.values()}
        if message.dedupe_key in keys:
            return False
        self._uow.db.inbox_seq += 1  # like a sequence: drawn even if the unit rolls back
        message.seq = self._uow.db.inbox_seq
        self._uow.pending_messages[message.id] = message
        return True

    async def get(self, message_id: str, *, for_update: bool = False) -> InboxMessage | None:
        found = self._uow.pending_messages.get(message_id) or self._uow.db.inbox.get(message_id)
        return copy.deepcopy(found) if found else None

    async def id_for(self, dedupe_key: str) -> str | None:
        stored = [*self._uow.db.inbox.values(), *self._uow.pending_messages.values()]
        return next((m.id for m in stored if m.dedupe_key == dedupe_key), None)

    async def save(self, message: InboxMessage, *, fence: int | None = None) -> bool:
        if fence is not None:
            stored = self._uow.db.inbox.get(message.id)
            if stored is None or stored.fence != fence or stored.state is not InboxState.RECEIVED:
                return False
            self._uow.fences[("inbox", message.id)] = fence
        self._uow.pending_messages[message.id] = message
        return True

    async def claim(
        self, message_id: str, *, now: datetime, lease_until: datetime, max_attempts: int
    ) -> InboxMessage | None:
        message = await self.get(message_id)
        if (
            message is None
            or message.state is not InboxState.RECEIVED
            or (message.next_attempt_at is not None and message.next_attempt_at > now)
            or (message.lease_until is not None and message.lease_until > now)
            or message.attempts >= max_attempts
            or (
                message.order_key is not None
                and await self.first_waiting(
                    message.channel, message.account, message.order_key, before_seq=message.seq
                )
            )
        ):
            return None
        self._uow.fences[("inbox", message_id)] = message.fence  # a claim meanwhile: conflict
        message.attempts += 1
        message.fence += 1
        message.lease_until = lease_until
        self._uow.pending_messages[message.id] = message
        return copy.deepcopy(message)

    async def finish(self, message_id: str, *, fence: int, at: datetime) -> bool:
        stored = self._uow.db.inbox.get(message_id)
        if stored is None or stored.fence != fence or stored.state is not InboxState.RECEIVED:
            return False
        self._uow.fences[("inbox", message_id)] = fence
        message = copy.deepcopy(stored)
        message.state = InboxState.PROCESSED
        message.processed_at = at
        message.lease_until = None
        message.last_error = None
        self._uow.pending_messages[message_id] = message
        return True

    async def first_waiting(
        self, channel: str, account: str, order_key: str, *, before_seq: int | None = None
    ) -> str | None:
        found = [
            m
            for m in self._uow.db.inbox.values()
            if (m.channel, m.account, m.order_key) == (channel, account, order_key)
            and m.state is InboxState.RECEIVED
            and (before_seq is None or (m.seq or 0) < before_seq)
        ]
        return min(found, key=lambda m: m.seq or 0).id if found else None

    async def due(self, *, now: datetime, queued_before: datetime, limit: int) -> Sequence[str]:
        inbox = self._uow.db.inbox.values()
        blocked = {
            m.id
            for m in inbox
            if m.order_key is not None
            and any(
                (e.channel, e.account, e.order_key) == (m.channel, m.account, m.order_key)
                and (e.seq or 0) < (m.seq or 0)
                and e.state is InboxState.RECEIVED
                for e in inbox
            )
        }
        found = [
            m
            for m in inbox
            if m.state is InboxState.RECEIVED
            and m.id not in blocked
            and (m.next_attempt_at is None or m.next_attempt_at <= now)
            and (m.lease_until is None or m.lease_until <= now)
            and (m.queued_at is None or m.queued_at < queued_before)
        ]
        found.sort(key=lambda m: (m.queued_at or m.received_at, m.seq or 0))
        return [m.id for m in found[:limit]]

    async def mark_queued(self, message_ids: Sequence[str], at: datetime) -> None:
        for message_id in message_ids:
            message = copy.deepcopy(self._uow.db.inbox[message_id])
            message.queued_at = at
            self._uow.pending_messages[message_id] = message

    async def failed(
        self, *, limit: int, within: AccountLimit | None = None
    ) -> Sequence[InboxMessage]:
        failed = [
            m
            for m in self._uow.db.inbox.values()
            if m.state is InboxState.FAILED and admitted(within, m.channel, m.account)
        ]
        return [copy.deepcopy(m) for m in failed[:limit]]

    async def prune(self, *, bodies_before: datetime, rows_before: datetime) -> tuple[int, int]:
        emptied = deleted = 0
        newest = max((m.seq or 0 for m in self._uow.db.inbox.values()), default=0)
        for message in list(self._uow.db.inbox.values()):
            if message.state is not InboxState.PROCESSED:
                continue
            if message.received_at < rows_before and (message.seq or 0) < newest:
                self._uow.deleted_messages.add(message.id)
                deleted += 1
            elif message.processed_at and message.processed_at < bodies_before and message.body:
                kept = copy.deepcopy(message)
                kept.body = b""
                self._uow.pending_messages[message.id] = kept
                emptied += 1
        return emptied, deleted


class _Feed:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def read(
        self, *, after: int, limit: int, within: AccountLimit | None = None
    ) -> Sequence[FeedEntry]:
        found = [
            e
            for e in self._uow.db.feed
            if e.seq > after and (within is None or within.admits(e.channel, e.account))
        ]
        return found[:limit]

    async def head(self) -> int:
        return self._uow.db.last_seq

    async def oldest(self) -> int | None:
        return self._uow.db.feed[0].seq if self._uow.db.feed else None

    async def prune(self, *, before: datetime) -> int:
        feed = self._uow.db.feed
        kept = [e.seq for e in feed if e.occurred_at >= before]
        first_kept = min(kept) if kept else (feed[-1].seq if feed else 0)
        gone = [e.seq for e in feed if e.seq < first_kept]  # a prefix: never a hole
        self._uow.pruned_feed.update(gone)
        return len(gone)


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
        if response.key in self._uow.db.idempotency:
            raise ConcurrencyConflict(f"Idempotency-Key {response.key!r} was stored meanwhile")
        self._uow.pending_idempotency[response.key] = response

    async def prune(self, *, before: datetime) -> int:
        gone = [k for k, at in self._uow.db.idempotency_at.items() if at < before]
        self._uow.pruned_keys.update(gone)
        return len(gone)


class FakeDocumentStore:
    """Documents in memory, kept only when the unit of work commits."""

    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def put(self, document: StoredDocument, content: bytes) -> None:
        if document.id in self._uow.db.documents or document.id in self._uow.pending_documents:
            raise ValueError(f"document {document.id} is stored already")
        self._uow.pending_documents[document.id] = (document, bytes(content))

    def _find(self, document_id: str) -> tuple[StoredDocument, bytes] | None:
        return self._uow.pending_documents.get(document_id) or self._uow.db.documents.get(
            document_id
        )

    async def get(self, document_id: str) -> StoredDocument | None:
        found = self._find(document_id)
        return found[0] if found else None

    async def read(self, document_id: str) -> bytes | None:
        found = self._find(document_id)
        return found[1] if found else None


class FakeUnitOfWork:
    def __init__(
        self, db: FakeDatabase, clock: FixedClock | None = None, *, read_only: bool = False
    ) -> None:
        self.db = db
        self.read_only = read_only
        self.clock = clock or FixedClock()
        self.orders = _Orders(self)
        self.commands = _Commands(self)
        self.inbox = _Inbox(self)
        self.feed = _Feed(self)
        self.cursors = _Cursors(self)
        self.idempotency = _Idempotency(self)
        self.documents = FakeDocumentStore(self)
        self.overview = FakeOverview(db)
        self.health = FakeHealthStore(db)
        self.seen: dict[str, tuple[Order, int, Order]] = {}
        self.new_orders: list[Order] = []
        self.pending_commands: dict[str, ChannelCommand] = {}
        self.new_command_ids: set[str] = set()
        self.pending_messages: dict[str, InboxMessage] = {}
        self.pending_cursors: dict[tuple[str, str, str], str] = {}
        self.pending_idempotency: dict[str, StoredResponse] = {}
        self.pending_refreshed: dict[str, datetime] = {}
        self.pending_documents: dict[str, tuple[StoredDocument, bytes]] = {}
        self.fences: dict[tuple[str, str], int] = {}
        self.deleted_commands: set[str] = set()
        self.deleted_messages: set[str] = set()
        self.pruned_feed: set[int] = set()
        self.pruned_keys: set[str] = set()
        self.recorded: list[tuple[str, Order | None, dict[str, Any]]] = []
        self.committed = False

    def track(self, order: Order) -> Order:
        self.seen[order.id] = (order, order.version, copy.deepcopy(order))
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

    def _check(self) -> None:
        """What the database refuses at commit: the same optimistic and unique checks."""
        db = self.db
        for order in self.new_orders:
            key = (order.channel, order.account, order.channel_order_id)
            if any((o.channel, o.account, o.channel_order_id) == key for o in db.orders.values()):
                raise ConcurrencyConflict(f"order {key} was created concurrently")
        for order_id, (_order, version, _copy) in self.seen.items():
            stored = db.orders.get(order_id)
            if stored is not None and stored.version != version:
                raise ConcurrencyConflict(f"order {order_id} changed since it was read")
        for command_id in self.new_command_ids:
            new = self.pending_commands[command_id]
            if any(
                (c.order_id, c.seq) == (new.order_id, new.seq) and c.id != new.id
                for c in db.commands.values()
            ):
                raise ConcurrencyConflict(f"command {new.order_id}#{new.seq} was added meanwhile")
        for (kind, ident), fence in self.fences.items():
            row: ChannelCommand | InboxMessage | None = (
                db.commands.get(ident) if kind == "command" else db.inbox.get(ident)
            )
            if row is None or row.fence != fence:
                raise ConcurrencyConflict(f"{kind} {ident} was claimed meanwhile")

    async def commit(self) -> None:
        if self.read_only:
            raise RuntimeError("a read-only unit of work does not commit")
        self._check()
        db = self.db
        now = self.clock.now()
        for order, _, before in self.seen.values():
            for event in order.events:
                self._append_feed(event.type.value, order, event.data, now)
            changed = bool(order.events) or order in self.new_orders or order != before
            order.events.clear()
            if changed:
                order.version += 1
                db.orders[order.id] = copy.deepcopy(order)
            self.seen[order.id] = (order, order.version, copy.deepcopy(order))
        for event_type, maybe_order, data in self.recorded:
            self._append_feed(event_type, maybe_order, data, now)
        db.commands.update(copy.deepcopy(self.pending_commands))
        for command_id in self.deleted_commands:
            db.commands.pop(command_id, None)
        db.inbox.update(copy.deepcopy(self.pending_messages))
        for message_id in self.deleted_messages:
            db.inbox.pop(message_id, None)
        db.cursors.update(self.pending_cursors)
        db.idempotency.update(self.pending_idempotency)
        db.idempotency_at.update(dict.fromkeys(self.pending_idempotency, now))
        for key in self.pruned_keys:
            db.idempotency.pop(key, None)
            db.idempotency_at.pop(key, None)
        db.feed = [e for e in db.feed if e.seq not in self.pruned_feed]
        db.refreshed.update(self.pending_refreshed)
        db.documents.update(self.pending_documents)
        db.commits += 1
        self.committed = True

    def _append_feed(
        self, event_type: str, order: Order | None, data: dict[str, Any], now: datetime
    ) -> None:
        self.db.last_seq += 1
        seq = self.db.last_seq
        self.db.feed.append(
            FeedEntry(
                seq=seq,
                type=event_type,
                order_id=order.id if order else None,
                channel=order.channel if order else None,
                account=order.account if order else None,
                occurred_at=now,
                data=copy.deepcopy(data),
            )
        )
        if order is not None:
            order.last_seq = seq
            stored = self.db.orders.get(order.id)
            if stored is not None:
                stored.last_seq = seq

    async def rollback(self) -> None:
        self.committed = True  # nothing of this unit of work reaches the database


class FakeUnitOfWorkFactory:
    def __init__(self, db: FakeDatabase | None = None, clock: FixedClock | None = None) -> None:
        self.db = db or FakeDatabase()
        self.clock = clock

    def __call__(self, *, read_only: bool = False) -> FakeUnitOfWork:
        return FakeUnitOfWork(self.db, self.clock, read_only=read_only)


@dataclass
class RecordingQueue:
    """A CommandQueue that remembers what it was given; tests drain it by hand."""

    commands: list[tuple[str, float]] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    message_delays: list[tuple[str, float]] = field(default_factory=list)

    def enqueue_command(self, command_id: str, *, delay_seconds: float = 0) -> None:
        self.commands.append((command_id, delay_seconds))

    def enqueue_inbox(self, message_id: str, *, delay_seconds: float = 0) -> None:
        self.messages.append(message_id)
        self.message_delays.append((message_id, delay_seconds))
