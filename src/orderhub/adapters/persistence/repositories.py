"""The repositories of :class:`~orderhub.adapters.persistence.uow.SqlUnitOfWork`.

They share one :class:`Transaction`: the connection of the unit of work, its identity map
of orders and the commands added but not yet written. Orders and new commands are written
by the unit of work at commit; everything else is written when the method is called, in
the same database transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from orderhub.adapters.persistence import feed
from orderhub.adapters.persistence import statements as q
from orderhub.adapters.persistence.limits import within
from orderhub.adapters.persistence.mapping import order_from_row, order_to_row
from orderhub.adapters.persistence.tables import (
    FEED_COUNTER_ID,
    cursors,
    feed_counter,
    feed_events,
    idempotency_keys,
    last_heard,
    orders,
)
from orderhub.application.access import AccountLimit
from orderhub.application.ports import (
    ChannelCommand,
    Clock,
    FeedEntry,
    OrderFilter,
    StoredResponse,
)
from orderhub.domain.errors import ConcurrencyConflict
from orderhub.domain.model import Order
from orderhub.domain.values import TERMINAL_STATUSES


@dataclass(kw_only=True, slots=True)
class TrackedOrder:
    """An order the unit of work loaded (``seen_version`` set) or was given (None)."""

    order: Order
    seen_version: int | None
    snapshot: bytes | None  # None: unknown, written at commit as if changed

    @property
    def is_new(self) -> bool:
        return self.seen_version is None

    def changed(self) -> bool:
        if self.snapshot is None:
            return True
        return _comparable(order_to_row(self.order)) != self.snapshot


_SNAPSHOTS: Final = msgspec.json.Encoder(order="deterministic")  # JSONB reorders keys


def _comparable(row: dict[str, Any]) -> bytes:
    """The row without ``version`` (the repository owns it), detached from the order: its
    JSON (msgspec, C: ``copy.deepcopy`` took 21% of ``GET /orders?limit=100``)."""
    return _SNAPSHOTS.encode({key: value for key, value in row.items() if key != "version"})


def snapshot_of(order: Order) -> bytes:
    return _comparable(order_to_row(order))


@dataclass(kw_only=True, slots=True)
class Transaction:
    """What the repositories of one unit of work share."""

    clock: Clock
    connection: AsyncConnection | None = None
    orders: dict[str, TrackedOrder] = field(default_factory=dict)
    new_commands: dict[str, ChannelCommand] = field(default_factory=dict)

    def conn(self) -> AsyncConnection:
        if self.connection is None:
            raise RuntimeError("the unit of work is not open: use `async with uow:`")
        return self.connection

    def insert(self, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
        """A dialect INSERT, for ON CONFLICT clauses (both dialects spell them alike)."""
        if self.conn().dialect.name == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    def track(self, order: Order, *, snapshot: bool = True) -> Order:
        """Register a loaded order, or return the instance this unit of work already has.
        ``snapshot=False`` (lists, which only read): no snapshot is taken, and the order is
        written at commit as if it had changed (optimistic concurrency holds either way)."""
        known = self.orders.get(order.id)
        if known is not None:
            return known.order
        self.orders[order.id] = TrackedOrder(
            order=order,
            seen_version=order.version,
            snapshot=snapshot_of(order) if snapshot else None,
        )
        return order

    def forget(self) -> None:
        self.orders.clear()
        self.new_commands.clear()


class SqlOrderRepository:
    def __init__(self, tx: Transaction) -> None:
        self._tx = tx

    async def get(self, order_id: str) -> Order | None:
        known = self._tx.orders.get(order_id)
        if known is not None:
            return known.order
        result = await self._tx.conn().execute(q.ORDER_BY_ID, {"b_id": order_id})
        row = result.mappings().one_or_none()
        return None if row is None else self._tx.track(order_from_row(row))

    async def get_by_channel_id(
        self, channel: str, account: str, channel_order_id: str
    ) -> Order | None:
        for known in self._tx.orders.values():
            order = known.order
            if (order.channel, order.account, order.channel_order_id) == (
                channel,
                account,
                channel_order_id,
            ):
                return order
        result = await self._tx.conn().execute(
            q.ORDER_BY_CHANNEL_ID,
            {"b_channel": channel, "b_account": account, "b_channel_order_id": channel_order_id},
        )
        row = result.mappings().one_or_none()
        return None if row is None else self._tx.track(order_from_row(row))

    def add(self, order: Order) -> None:
        if order.id in self._tx.orders:
            if self._tx.orders[order.id].order is not order:
                raise ValueError(f"another order with id {order.id} is already in this unit")
            return
        self._tx.orders[order.id] = TrackedOrder(order=order, seen_version=None, snapshot=None)

    async def list(
        self, filters: OrderFilter, *, after_seq: int | None, limit: int
    ) -> Sequence[Order]:
        if limit <= 0:
            return []
        o = orders.c
        query = sa.select(orders)
        if filters.status is not None:
            query = query.where(o.status == filters.status.value)
        if filters.channel is not None:
            query = query.where(o.channel == filters.channel)
        if filters.account is not None:
            query = query.where(o.account == filters.account)
        if filters.updated_after is not None:
            query = query.where(o.updated_at > filters.updated_after)
        if filters.ship_by_before is not None:
            query = query.where(o.ship_by < filters.ship_by_before)
        if filters.attention is not None:
            query = query.where(o.needs_attention == filters.attention)
        if filters.fulfilled_by is not None:
            query = query.where(o.fulfilled_by == filters.fulfilled_by.value)
        if filters.within is not None:
            query = query.where(within(filters.within, o.channel, o.account))
        if after_seq is not None:
            query = query.where(o.last_seq > after_seq)
        result = await self._tx.conn().execute(query.order_by(o.last_seq).limit(limit))
        # a page of orders is read, never written: no change-tracking snapshots
        return [self._tx.track(order_from_row(row), snapshot=False) for row in result.mappings()]

    async def stale(self, *, older_than: datetime, limit: int) -> Sequence[Order]:
        if limit <= 0:
            return []
        o = orders.c
        result = await self._tx.conn().execute(
            sa.select(orders)
            .where(
                o.status.not_in(sorted(s.value for s in TERMINAL_STATUSES)),
                last_heard < older_than,
            )
            .order_by(last_heard, o.id)  # ix_orders_last_heard_id: no scan of every order
            .limit(limit)
        )
        return [order_from_row(row) for row in result.mappings()]

    async def mark_refreshed(self, order_id: str, at: datetime) -> None:
        await self._tx.conn().execute(
            sa.update(orders).where(orders.c.id == order_id).values(refreshed_at=at)
        )

    async def invoice_checks_due(self, *, now: datetime, limit: int) -> Sequence[str]:
        if limit <= 0:
            return []
        o = orders.c
        result = await self._tx.conn().execute(
            sa.select(o.id)
            .where(o.next_invoice_check.is_not(None), o.next_invoice_check <= now)
            .order_by(o.next_invoice_check, o.id)
            .limit(limit)
        )
        return [str(order_id) for order_id in result.scalars()]


class SqlFeedReader:
    def __init__(self, tx: Transaction) -> None:
        self._tx = tx

    async def read(
        self, *, after: int, limit: int, within: AccountLimit | None = None
    ) -> Sequence[FeedEntry]:
        return await feed.read(self._tx.conn(), after=after, limit=limit, within=within)

    async def head(self) -> int:
        result = await self._tx.conn().execute(
            sa.select(feed_counter.c.last_seq).where(feed_counter.c.id == FEED_COUNTER_ID)
        )
        value = result.scalar_one_or_none()
        return 0 if value is None else int(value)

    async def oldest(self) -> int | None:
        result = await self._tx.conn().execute(sa.select(sa.func.min(feed_events.c.seq)))
        value = result.scalar_one_or_none()
        return None if value is None else int(value)

    async def prune(self, *, before: datetime) -> int:
        """Delete a prefix of the feed only: every event numbered before the first one that
        is kept (``occurred_at`` is stamped when the change was made, the number at commit,
        so the two need not rise together: deleting by time alone could leave a hole that
        a reader would skip)."""
        f = feed_events.c
        connection = self._tx.conn()
        first_kept = (
            await connection.execute(sa.select(sa.func.min(f.seq)).where(f.occurred_at >= before))
        ).scalar_one_or_none()
        if first_kept is None:  # everything is old: keep the newest
            first_kept = (await connection.execute(sa.select(sa.func.max(f.seq)))).scalar_one()
        if first_kept is None:
            return 0
        result = await connection.execute(sa.delete(feed_events).where(f.seq < first_kept))
        return int(result.rowcount)


class SqlCursorStore:
    def __init__(self, tx: Transaction) -> None:
        self._tx = tx

    async def get(self, channel: str, account: str, name: str) -> str | None:
        result = await self._tx.conn().execute(
            sa.select(cursors.c.value).where(
                cursors.c.channel == channel, cursors.c.account == account, cursors.c.name == name
            )
        )
        value: str | None = result.scalar_one_or_none()
        return value

    async def set(self, channel: str, account: str, name: str, value: str) -> None:
        statement = (
            self._tx.insert(cursors)
            .values(channel=channel, account=account, name=name, value=value)
            .on_conflict_do_update(
                index_elements=[cursors.c.channel, cursors.c.account, cursors.c.name],
                set_={"value": value},
            )
        )
        await self._tx.conn().execute(statement)


class SqlIdempotencyStore:
    """Reading a key claims it until the end of the transaction (PostgreSQL: an advisory
    lock on its hash; SQLite: units of work are serial anyway).

    Without the claim, READ COMMITTED lets a second request with the same key read "no
    answer yet" and then, one statement later, the order as the first request left it:
    it would fail on the changed order instead of returning the first answer. With it,
    the second request waits for the first to commit or roll back, then sees its answer."""

    def __init__(self, tx: Transaction) -> None:
        self._tx = tx

    async def get(self, key: str) -> StoredResponse | None:
        connection = self._tx.conn()
        if connection.dialect.name == "postgresql":
            await connection.execute(q.LOCK_IDEMPOTENCY_KEY, {"b_key": key})
        result = await connection.execute(q.IDEMPOTENCY_BY_KEY, {"b_key": key})
        row = result.mappings().one_or_none()
        if row is None:
            return None
        return StoredResponse(
            key=row["key"],
            fingerprint=row["fingerprint"],
            status_code=row["status_code"],
            body=dict(row["body"]),
        )

    async def put(self, response: StoredResponse) -> None:
        """Store the first answer. A concurrent request that stored the same key first makes
        this one a :class:`ConcurrencyConflict`: on retry it finds the stored answer."""
        connection = self._tx.conn()
        row = {
            "key": response.key,
            "fingerprint": response.fingerprint,
            "status_code": response.status_code,
            "body": response.body,
            "created_at": self._tx.clock.now(),
        }
        result = await connection.execute(q.ADD_IDEMPOTENCY_KEY[connection.dialect.name], row)
        if result.rowcount != 1:
            raise ConcurrencyConflict(f"Idempotency-Key {response.key!r} was stored meanwhile")

    async def prune(self, *, before: datetime) -> int:
        result = await self._tx.conn().execute(
            sa.delete(idempotency_keys).where(idempotency_keys.c.created_at < before)
        )
        return int(result.rowcount)
