"""The operator's reads (:class:`~orderhub.application.ports.OverviewReader`) in SQL.

Counts and backlogs are aggregates the database computes; the hourly chart groups in the
database too (``date_trunc`` on PostgreSQL, ``strftime`` on SQLite, whose timestamps are
UTC strings). Search narrows down in SQL (the order's columns, and its JSON document as
text for the customer and the SKUs) and confirms each candidate with
:func:`~orderhub.application.services.overview.search_matches`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

import sqlalchemy as sa

from orderhub.adapters.persistence.mapping import (
    feed_entry_from_row,
    message_from_row,
    order_from_row,
)
from orderhub.adapters.persistence.repositories import Transaction
from orderhub.adapters.persistence.tables import (
    channel_commands,
    feed_counter,
    feed_events,
    inbox_messages,
    orders,
)
from orderhub.application.ports import (
    Backlog,
    ChannelActivity,
    CommandState,
    FeedEntry,
    HourlyCount,
    InboxMessage,
    InboxState,
    StatusCount,
)
from orderhub.application.services.overview import search_matches
from orderhub.domain.model import Order
from orderhub.domain.values import OrderStatus

TO_SHIP: Final = (
    OrderStatus.AWAITING_ACCEPTANCE.value,
    OrderStatus.ACCEPTED.value,
    OrderStatus.READY_TO_SHIP.value,
    OrderStatus.PARTIALLY_SHIPPED.value,
)
SEARCH_CANDIDATES: Final = 4  # candidates read per result wanted (the JSON text over-matches)


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _utc(value: Any) -> datetime:
    if isinstance(value, str):  # SQLite's strftime
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_UNNUMBERED: Final = sa.text(
    "SELECT CASE WHEN to_regclass('feed_pending') IS NULL THEN 0 ELSE"
    " (SELECT coalesce(sum(cardinality(types)), 0) FROM feed_pending) END"
)
"""Events in ``feed_pending`` rows another transaction committed (migration 0009; 0 on a
database before it)."""


class SqlOverviewReader:
    def __init__(self, tx: Transaction) -> None:
        self._tx = tx

    async def status_counts(self) -> Sequence[StatusCount]:
        o = orders.c
        result = await self._tx.conn().execute(
            sa.select(o.channel, o.account, o.status, sa.func.count())
            .group_by(o.channel, o.account, o.status)
            .order_by(o.channel, o.account, o.status)
        )
        return [
            StatusCount(channel=channel, account=account, status=OrderStatus(status), count=n)
            for channel, account, status, n in result.all()
        ]

    async def _backlog(self, table: sa.Table, state: str, since: sa.Column[Any]) -> Backlog:
        result = await self._tx.conn().execute(
            sa.select(sa.func.count(), sa.func.min(since)).where(table.c.state == state)
        )
        count, oldest = result.one()
        return Backlog(count=int(count), oldest=None if oldest is None else _utc(oldest))

    async def inbox_backlog(self) -> Backlog:
        i = inbox_messages.c
        return await self._backlog(inbox_messages, InboxState.RECEIVED.value, i.received_at)

    async def command_backlog(self) -> Backlog:
        c = channel_commands.c
        return await self._backlog(channel_commands, CommandState.PENDING.value, c.created_at)

    async def feed_head(self) -> int:
        result = await self._tx.conn().execute(sa.select(feed_counter.c.last_seq))
        return int(result.scalar_one_or_none() or 0)

    async def feed_unnumbered(self) -> int:
        connection = self._tx.conn()
        if connection.dialect.name != "postgresql":
            return 0  # numbered in the statement, before COMMIT: nothing can be left
        # another transaction's pending row is invisible here: what is seen was committed
        result = await connection.execute(_UNNUMBERED)
        return int(result.scalar_one())

    async def channel_activity(self) -> Sequence[ChannelActivity]:
        i = inbox_messages.c
        result = await self._tx.conn().execute(
            sa.select(i.channel, i.account, i.source, sa.func.max(i.processed_at))
            .where(i.state == InboxState.PROCESSED.value, i.processed_at.is_not(None))
            .group_by(i.channel, i.account, i.source)
            .order_by(i.channel, i.account, i.source)
        )
        return [
            ChannelActivity(channel=c, account=a, source=s, last_processed_at=_utc(at))
            for c, a, s, at in result.all()
        ]

    async def received_per_hour(self, *, since: datetime) -> Sequence[HourlyCount]:
        o = orders.c
        connection = self._tx.conn()
        hour: sa.ColumnElement[Any]
        if connection.dialect.name == "postgresql":
            hour = sa.func.date_trunc("hour", sa.func.timezone("UTC", o.created_at))
        else:
            hour = sa.func.strftime("%Y-%m-%dT%H:00:00", o.created_at)
        hour = hour.label("hour")
        result = await connection.execute(
            sa.select(o.channel, hour, sa.func.count())
            .where(o.created_at >= since)
            .group_by(o.channel, hour)
            .order_by(o.channel, hour)
        )
        return [
            HourlyCount(channel=channel, hour=_utc(at), count=int(n))
            for channel, at, n in result.all()
        ]

    async def ship_by_due(self, *, before: datetime, limit: int) -> Sequence[Order]:
        o = orders.c
        result = await self._tx.conn().execute(
            sa.select(orders)
            .where(o.status.in_(TO_SHIP), o.ship_by.is_not(None), o.ship_by < before)
            .order_by(o.ship_by, o.id)
            .limit(limit)
        )
        return [order_from_row(row) for row in result.mappings()]

    async def search(self, text: str, *, limit: int) -> Sequence[Order]:
        o = orders.c
        needle = text.lower()
        # the document as JSON text: raw on PostgreSQL, \u-escaped on SQLite
        escaped = json.dumps(needle)[1:-1]
        document = sa.func.lower(sa.cast(o.document, sa.Text()))
        wanted = sa.or_(
            sa.func.lower(o.channel_order_id).like(_like(needle), escape="\\"),
            sa.func.lower(o.order_number).like(_like(needle), escape="\\"),
            document.like(_like(needle), escape="\\"),
            document.like(_like(escaped), escape="\\"),
        )
        result = await self._tx.conn().execute(
            sa.select(orders)
            .where(wanted)
            .order_by(o.last_seq.desc())
            .limit(limit * SEARCH_CANDIDATES)
        )
        found = [order_from_row(row) for row in result.mappings()]
        return [order for order in found if search_matches(order, text)][:limit]

    async def order_messages(
        self, channel: str, account: str, order_key: str, *, limit: int
    ) -> Sequence[InboxMessage]:
        i = inbox_messages.c
        result = await self._tx.conn().execute(
            sa.select(inbox_messages)
            .where(i.channel == channel, i.account == account, i.order_key == order_key)
            .order_by(i.seq)
            .limit(limit)
        )
        return [message_from_row(row) for row in result.mappings()]

    async def order_events(self, order_id: str, *, limit: int) -> Sequence[FeedEntry]:
        f = feed_events.c
        result = await self._tx.conn().execute(
            sa.select(feed_events).where(f.order_id == order_id).order_by(f.seq.desc()).limit(limit)
        )
        return [feed_entry_from_row(row) for row in reversed(result.mappings().all())]
