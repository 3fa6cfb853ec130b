"""Ports the core owns. Adapters implement them; the core never imports an adapter."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from types import TracebackType
from typing import Any, Final, Protocol, Self

from orderhub.application.access import AccountLimit
from orderhub.channels.spi import (
    ChannelCommand,
    Clock,
    CommandKind,
    CommandState,
    CursorStore,
    IdGenerator,
)
from orderhub.domain.model import Order
from orderhub.domain.values import OrderFulfilledBy, OrderStatus

__all__ = [
    "ChannelCommand",
    "Clock",
    "CommandKind",
    "CommandState",
    "CursorStore",
    "IdGenerator",
]


class InboxState(StrEnum):
    RECEIVED = "received"
    PROCESSED = "processed"
    FAILED = "failed"


@dataclass(kw_only=True, slots=True)
class InboxMessage:
    """A raw message from a channel, stored before it is acknowledged.

    ``seq`` is its arrival number (drawn by the store); ``order_key`` the channel's order id
    when the adapter can read it cheaply: messages of one order are applied one at a time,
    in arrival order. Processing is claimed, paced and capped like a command's dispatch
    (``fence``, ``lease_until``, ``attempts``, ``next_attempt_at``)."""

    id: str
    channel: str
    account: str
    dedupe_key: str
    body: bytes
    headers: dict[str, str]
    received_at: datetime
    source: str = "webhook"  # webhook | poll | reconciliation | refresh | command
    order_key: str | None = None
    seq: int | None = None
    state: InboxState = InboxState.RECEIVED
    attempts: int = 0
    fence: int = 0
    next_attempt_at: datetime | None = None
    lease_until: datetime | None = None
    queued_at: datetime | None = None
    last_error: str | None = None
    processed_at: datetime | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class FeedEntry:
    seq: int
    type: str
    order_id: str | None
    channel: str | None
    occurred_at: datetime
    data: dict[str, Any]
    account: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class OrderFilter:
    status: OrderStatus | None = None
    channel: str | None = None
    account: str | None = None
    updated_after: datetime | None = None
    ship_by_before: datetime | None = None
    attention: bool | None = None
    fulfilled_by: OrderFulfilledBy | None = None
    within: AccountLimit | None = None
    """Only orders of these channels and accounts (a limited API key); None: every one."""


@dataclass(frozen=True, kw_only=True, slots=True)
class StoredResponse:
    """The first answer given to an ``Idempotency-Key``."""

    key: str
    fingerprint: str
    status_code: int
    body: dict[str, Any]


@dataclass(frozen=True, kw_only=True, slots=True)
class StoredDocument:
    """A document the hub keeps (an invoice's PDF): what it is, not its bytes."""

    id: str
    order_id: str
    content_type: str
    size: int
    sha256: str  # hex digest of the bytes
    created_at: datetime
    filename: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Pruned:
    """What one retention pass removed."""

    inbox_bodies: int = 0
    inbox_messages: int = 0
    commands: int = 0
    idempotency_keys: int = 0
    feed_events: int = 0


class OrderRepository(Protocol):
    async def get(self, order_id: str) -> Order | None: ...

    async def get_by_channel_id(
        self, channel: str, account: str, channel_order_id: str
    ) -> Order | None: ...

    def add(self, order: Order) -> None: ...

    async def list(
        self, filters: OrderFilter, *, after_seq: int | None, limit: int
    ) -> Sequence[Order]:
        """Orders by ``last_seq`` ascending (the feed sequence of each order's newest
        event), strictly after ``after_seq``: as gapless as the feed."""
        ...

    async def stale(self, *, older_than: datetime, limit: int) -> Sequence[Order]:
        """Open orders with no news from their channel, and not refreshed, since
        ``older_than``; the longest silent first."""
        ...

    async def mark_refreshed(self, order_id: str, at: datetime) -> None: ...

    async def invoice_checks_due(self, *, now: datetime, limit: int) -> Sequence[str]:
        """Ids of orders with an invoice whose next check (``next_invoice_check``) has
        come, the longest overdue first."""
        ...


OUTCOME_FIELDS: Final = ("state", "result", "last_error", "lease_until", "finished_at")
"""What :meth:`CommandRepository.record_outcome` writes of a command."""


class CommandRepository(Protocol):
    def add(self, command: ChannelCommand) -> None: ...

    async def get(self, command_id: str, *, for_update: bool = False) -> ChannelCommand | None: ...

    async def for_order(self, order_id: str) -> Sequence[ChannelCommand]:
        """The order's commands by ``seq``."""
        ...

    async def claim(
        self, command_id: str, *, now: datetime, lease_until: datetime, max_attempts: int
    ) -> ChannelCommand | None:
        """Claim the command in one statement if nothing stands in the way: ``pending``,
        due, not leased at ``now``, fewer than ``max_attempts`` attempts, and every earlier
        command of its order ended for good (succeeded or abandoned). ``attempts`` and
        ``fence`` go up, ``held_by`` is cleared, the lease runs to ``lease_until``; the
        command as claimed, or None (the caller reads why)."""
        ...

    async def next_seq(self, order_id: str) -> int:
        """The ``seq`` for a new command of the order (its commands added here counted)."""
        ...

    async def save(self, command: ChannelCommand, *, fence: int | None = None) -> bool:
        """Write the command. With ``fence``: only if it is still pending under that claim
        (False, and nothing written, when another claim or an ending came first)."""
        ...

    async def record_outcome(self, command: ChannelCommand, *, fence: int) -> bool:
        """Write the command's :data:`OUTCOME_FIELDS` only, and only if it is still pending
        under the claim ``fence`` (False, and nothing written, otherwise): the rest of the
        row stays as it is, whatever copy of it the caller holds."""
        ...

    async def due(self, *, now: datetime, queued_before: datetime, limit: int) -> Sequence[str]:
        """Pending, not held (or held by a command failed no more: its claim raced the
        operator's retry or abandon), whose retry time has come, whose lease (if any) has
        run out, that were not handed to the queue since ``queued_before`` and that no
        earlier pending command of their order, not held by a failed one, is before
        (that one ends first and releases them): the ones a crash or a lost message left
        behind, and one left waiting behind a command that was held meanwhile (its claim
        raced the failure: claimed again, it is held too, and listed). Least recently
        queued first."""
        ...

    async def mark_queued(self, command_ids: Sequence[str], at: datetime) -> None: ...

    async def set_held(self, command: ChannelCommand, held_by: str | None) -> bool:
        """Set only ``held_by`` of a pending command, and only while its claim is the one
        read (``command.fence``): never a whole-row write over a claim made meanwhile."""
        ...

    async def failed(
        self, *, limit: int, within: AccountLimit | None = None
    ) -> Sequence[ChannelCommand]:
        """Failed commands (of the accounts ``within`` admits, when given)."""
        ...

    async def held(
        self, *, limit: int, within: AccountLimit | None = None
    ) -> Sequence[ChannelCommand]:
        """Pending commands held by a failed command of their order (``held_by`` naming
        one failed no more is not listed: the sweeper brings that one back)."""
        ...

    async def prune(self, *, finished_before: datetime) -> int:
        """Delete succeeded and abandoned commands finished before then."""
        ...


class InboxRepository(Protocol):
    async def add(self, message: InboxMessage) -> bool:
        """Store the message (its ``seq`` is drawn now); False when its dedupe key was
        already stored."""
        ...

    async def get(self, message_id: str, *, for_update: bool = False) -> InboxMessage | None: ...

    async def id_for(self, dedupe_key: str) -> str | None:
        """The id of the message stored under ``dedupe_key``, if any."""
        ...

    async def save(self, message: InboxMessage, *, fence: int | None = None) -> bool:
        """Write the message. With ``fence``: only if it is still ``received`` under that
        claim."""
        ...

    async def claim(
        self, message_id: str, *, now: datetime, lease_until: datetime, max_attempts: int
    ) -> InboxMessage | None:
        """Claim the message in one statement if nothing stands in the way: ``received``,
        due, not leased at ``now``, fewer than ``max_attempts`` attempts, and no earlier
        ``received`` message of its order. ``attempts`` and ``fence`` go up, the lease runs
        to ``lease_until``; the message as claimed, or None (the caller reads why)."""
        ...

    async def finish(self, message_id: str, *, fence: int, at: datetime) -> bool:
        """Mark the message ``processed`` at ``at``, only if it is still ``received`` under
        the claim ``fence`` (the row stays locked to the end of the unit of work)."""
        ...

    async def first_waiting(
        self, channel: str, account: str, order_key: str, *, before_seq: int | None = None
    ) -> str | None:
        """The earliest ``received`` message of that order (before ``before_seq``)."""
        ...

    async def due(self, *, now: datetime, queued_before: datetime, limit: int) -> Sequence[str]:
        """Like :meth:`CommandRepository.due`, for ``received`` messages (one waiting behind
        an earlier message of its order is left to that one)."""
        ...

    async def mark_queued(self, message_ids: Sequence[str], at: datetime) -> None: ...

    async def failed(
        self, *, limit: int, within: AccountLimit | None = None
    ) -> Sequence[InboxMessage]: ...

    async def prune(self, *, bodies_before: datetime, rows_before: datetime) -> tuple[int, int]:
        """Empty the bodies of messages processed before ``bodies_before`` and delete the
        processed rows received before ``rows_before`` (their dedupe keys go with them),
        never the newest message (its ``seq`` keeps arrival numbers rising). Returns
        (bodies emptied, rows deleted)."""
        ...


class FeedReader(Protocol):
    async def read(
        self, *, after: int, limit: int, within: AccountLimit | None = None
    ) -> Sequence[FeedEntry]:
        """Events after ``after`` by ``seq``; with ``within``, only the events of those
        channels and accounts (the others are skipped, their numbers too)."""
        ...

    async def head(self) -> int:
        """The newest sequence committed (0: none yet): every event up to it is readable."""
        ...

    async def oldest(self) -> int | None:
        """The lowest sequence still kept (None: the feed is empty)."""
        ...

    async def prune(self, *, before: datetime) -> int:
        """Delete events that occurred before ``before``, never the newest one (so a reader
        can always tell how far the feed has gone)."""
        ...


@dataclass(frozen=True, kw_only=True, slots=True)
class StatusCount:
    channel: str
    account: str
    status: OrderStatus
    count: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Backlog:
    """Work waiting: how much, and since when the oldest of it waits."""

    count: int
    oldest: datetime | None


@dataclass(frozen=True, kw_only=True, slots=True)
class ChannelActivity:
    """The newest message of one account and source (webhook, poll...) applied."""

    channel: str
    account: str
    source: str
    last_processed_at: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class HourlyCount:
    channel: str
    hour: datetime  # the start of the hour, UTC
    count: int


class OverviewReader(Protocol):
    """Reads for an operator's overview: counts, backlogs, searches. Never writes."""

    async def status_counts(self) -> Sequence[StatusCount]: ...

    async def inbox_backlog(self) -> Backlog:
        """Messages received and not yet applied (nor failed)."""
        ...

    async def command_backlog(self) -> Backlog:
        """Pending channel commands (held ones included)."""
        ...

    async def feed_head(self) -> int:
        """The newest feed sequence (0: nothing yet)."""
        ...

    async def feed_unnumbered(self) -> int:
        """Feed events committed but never numbered: always 0. More means events the
        warehouse will not see (PostgreSQL: a numbering trigger that did not fire,
        docs/feed.md), for a person to act on."""
        ...

    async def channel_activity(self) -> Sequence[ChannelActivity]: ...

    async def received_per_hour(self, *, since: datetime) -> Sequence[HourlyCount]:
        """Orders the hub received (created) since then, per channel and hour."""
        ...

    async def ship_by_due(self, *, before: datetime, limit: int) -> Sequence[Order]:
        """Orders still to ship (not shipped, delivered or terminal) whose ship-by is
        before ``before``, the most urgent first."""
        ...

    async def search(self, text: str, *, limit: int) -> Sequence[Order]:
        """Orders whose channel order id, order number, customer (name, email, company)
        or a line's SKU contains ``text`` (case-insensitive), newest change first."""
        ...

    async def order_messages(
        self, channel: str, account: str, order_key: str, *, limit: int
    ) -> Sequence[InboxMessage]:
        """The inbox messages of one order, by arrival."""
        ...

    async def order_events(self, order_id: str, *, limit: int) -> Sequence[FeedEntry]:
        """The order's feed events, oldest first (the newest ``limit``)."""
        ...


class IdempotencyStore(Protocol):
    async def get(self, key: str) -> StoredResponse | None: ...

    async def put(self, response: StoredResponse) -> None: ...

    async def prune(self, *, before: datetime) -> int: ...


class DocumentStore(Protocol):
    """Documents (invoice PDFs), written with the unit of work's transaction: a document
    stored in a unit that is not committed is not kept (its bytes may linger where the
    store keeps them outside the database, unreferenced and harmless)."""

    async def put(self, document: StoredDocument, content: bytes) -> None: ...

    async def get(self, document_id: str) -> StoredDocument | None: ...

    async def read(self, document_id: str) -> bytes | None:
        """The bytes, checked against the stored digest; None when there is no such
        document."""
        ...


@dataclass(frozen=True, kw_only=True, slots=True)
class HealthItem:
    """How one thing an account depends on fared last (its token, a polling job): ``ok``
    at ``checked_at``; when failing, since when and why (``detail``, the channel's words)."""

    channel: str
    account: str
    item: str
    ok: bool
    checked_at: datetime
    last_ok_at: datetime | None = None
    failing_since: datetime | None = None
    detail: str = ""


class HealthStore(Protocol):
    async def note(
        self, channel: str, account: str, item: str, *, ok: bool, detail: str, at: datetime
    ) -> None:
        """Record an outcome: ok clears the failure; a failure keeps its first time."""
        ...

    async def all(self) -> Sequence[HealthItem]:
        """Every item, by channel, account and item."""
        ...


class UnitOfWork(Protocol):
    """One transaction. Rolls back unless committed; commit writes the events of every
    order it saw to the feed, in the same transaction as the orders and commands."""

    @property
    def orders(self) -> OrderRepository: ...

    @property
    def commands(self) -> CommandRepository: ...

    @property
    def inbox(self) -> InboxRepository: ...

    @property
    def feed(self) -> FeedReader: ...

    @property
    def cursors(self) -> CursorStore: ...

    @property
    def idempotency(self) -> IdempotencyStore: ...

    @property
    def documents(self) -> DocumentStore: ...

    @property
    def overview(self) -> OverviewReader: ...

    @property
    def health(self) -> HealthStore: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def record(self, event_type: str, *, order: Order | None, data: dict[str, Any]) -> None:
        """Add an event that no aggregate raised (``command.*``) to this commit's feed rows."""
        ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, read_only: bool = False) -> UnitOfWork:
        """A new unit of work. ``read_only``: for reads that lock nothing, where each
        statement may see what was committed when it started (as at READ COMMITTED), so
        the adapter may spare the transaction around them. It refuses to write, to lock
        rows and to commit."""
        ...


class InboxIntake(Protocol):
    """Stores one received message in a transaction of its own, committed before
    :meth:`store` returns (what a webhook's 2xx waits for), in as few round trips as the
    database allows. Deduplicated as :meth:`InboxRepository.add`."""

    async def store(self, message: InboxMessage) -> tuple[bool, str | None]:
        """(True, ``message.id``) when ``message`` is new (stored, ``seq`` set); else
        (False, the id of the message stored under its dedupe key, None if gone since)."""
        ...


class CommandQueue(Protocol):
    """Hands committed commands and inbox messages to the workers (dramatiq in production).

    Never blocks and never raises: a message it could not hand over is found again by the
    sweeper (the rows are committed before anything is enqueued)."""

    def enqueue_command(self, command_id: str, *, delay_seconds: float = 0) -> None: ...

    def enqueue_inbox(self, message_id: str, *, delay_seconds: float = 0) -> None: ...
