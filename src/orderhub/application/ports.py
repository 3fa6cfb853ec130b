"""Ports the core owns. Adapters implement them; the core never imports an adapter."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from types import TracebackType
from typing import Any, Protocol, Self

from orderhub.channels.spi import (
    ChannelCommand,
    Clock,
    CommandKind,
    CommandState,
    CursorStore,
    IdGenerator,
)
from orderhub.domain.model import Order
from orderhub.domain.values import OrderStatus

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
    """A raw message from a channel, stored before it is acknowledged."""

    id: str
    channel: str
    account: str
    dedupe_key: str
    body: bytes
    headers: dict[str, str]
    received_at: datetime
    source: str = "webhook"  # webhook | poll
    state: InboxState = InboxState.RECEIVED
    attempts: int = 0
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


@dataclass(frozen=True, kw_only=True, slots=True)
class OrderFilter:
    status: OrderStatus | None = None
    channel: str | None = None
    account: str | None = None
    updated_after: datetime | None = None
    ship_by_before: datetime | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class StoredResponse:
    """The first answer given to an ``Idempotency-Key``."""

    key: str
    fingerprint: str
    status_code: int
    body: dict[str, Any]


class OrderRepository(Protocol):
    async def get(self, order_id: str) -> Order | None: ...

    async def get_by_channel_id(
        self, channel: str, account: str, channel_order_id: str
    ) -> Order | None: ...

    def add(self, order: Order) -> None: ...

    async def list(
        self, filters: OrderFilter, *, after: tuple[datetime, str] | None, limit: int
    ) -> Sequence[Order]:
        """Orders by (updated_at, id) ascending, strictly after the cursor."""
        ...


class CommandRepository(Protocol):
    def add(self, command: ChannelCommand) -> None: ...

    async def get(self, command_id: str, *, for_update: bool = False) -> ChannelCommand | None: ...

    async def for_order(self, order_id: str) -> Sequence[ChannelCommand]: ...

    async def save(self, command: ChannelCommand) -> None: ...

    async def due(self, *, now: datetime, created_before: datetime, limit: int) -> Sequence[str]:
        """Pending commands created before ``created_before`` whose retry time has come and
        whose lease (if any) has run out: the ones a crash may have left behind."""
        ...

    async def failed(self, *, limit: int) -> Sequence[ChannelCommand]: ...


class InboxRepository(Protocol):
    async def add(self, message: InboxMessage) -> bool:
        """Store the message; False when its dedupe key was already stored."""
        ...

    async def get(self, message_id: str, *, for_update: bool = False) -> InboxMessage | None: ...

    async def id_for(self, dedupe_key: str) -> str | None:
        """The id of the message stored under ``dedupe_key``, if any."""
        ...

    async def save(self, message: InboxMessage) -> None: ...

    async def unprocessed(self, *, received_before: datetime, limit: int) -> Sequence[str]: ...

    async def failed(self, *, limit: int) -> Sequence[InboxMessage]: ...


class FeedReader(Protocol):
    async def read(self, *, after: int, limit: int) -> Sequence[FeedEntry]: ...


class IdempotencyStore(Protocol):
    async def get(self, key: str) -> StoredResponse | None: ...

    async def put(self, response: StoredResponse) -> None: ...


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
    def __call__(self) -> UnitOfWork: ...


class CommandQueue(Protocol):
    """Hands committed commands and inbox messages to the workers (dramatiq in production)."""

    def enqueue_command(self, command_id: str, *, delay_seconds: float = 0) -> None: ...

    def enqueue_inbox(self, message_id: str) -> None: ...
