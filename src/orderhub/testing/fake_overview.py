"""The in-memory :class:`~orderhub.application.ports.OverviewReader`: reads the committed
state of a :class:`~orderhub.testing.fakes.FakeDatabase`."""

from __future__ import annotations

import copy
import dataclasses
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Final

from orderhub.application.ports import (
    Backlog,
    ChannelActivity,
    CommandState,
    FeedEntry,
    HealthItem,
    HourlyCount,
    InboxMessage,
    InboxState,
    StatusCount,
)
from orderhub.application.services.overview import search_matches
from orderhub.domain.model import Order
from orderhub.domain.values import OrderStatus

if TYPE_CHECKING:
    from orderhub.testing.fakes import FakeDatabase

TO_SHIP: Final = frozenset(
    {
        OrderStatus.AWAITING_ACCEPTANCE,
        OrderStatus.ACCEPTED,
        OrderStatus.READY_TO_SHIP,
        OrderStatus.PARTIALLY_SHIPPED,
    }
)


class FakeOverview:
    def __init__(self, db: FakeDatabase) -> None:
        self._db = db

    async def status_counts(self) -> Sequence[StatusCount]:
        counted = Counter((o.channel, o.account, o.status) for o in self._db.orders.values())
        return [
            StatusCount(channel=channel, account=account, status=status, count=count)
            for (channel, account, status), count in sorted(counted.items())
        ]

    async def inbox_backlog(self) -> Backlog:
        waiting = [m for m in self._db.inbox.values() if m.state is InboxState.RECEIVED]
        return Backlog(
            count=len(waiting), oldest=min((m.received_at for m in waiting), default=None)
        )

    async def command_backlog(self) -> Backlog:
        waiting = [c for c in self._db.commands.values() if c.state is CommandState.PENDING]
        return Backlog(
            count=len(waiting), oldest=min((c.created_at for c in waiting), default=None)
        )

    async def feed_head(self) -> int:
        return self._db.last_seq

    async def feed_unnumbered(self) -> int:
        return 0  # the fake numbers every event as it commits

    async def channel_activity(self) -> Sequence[ChannelActivity]:
        newest: dict[tuple[str, str, str], datetime] = {}
        for m in self._db.inbox.values():
            if m.state is InboxState.PROCESSED and m.processed_at is not None:
                key = (m.channel, m.account, m.source)
                newest[key] = max(newest.get(key, m.processed_at), m.processed_at)
        return [
            ChannelActivity(channel=c, account=a, source=s, last_processed_at=at)
            for (c, a, s), at in sorted(newest.items())
        ]

    async def received_per_hour(self, *, since: datetime) -> Sequence[HourlyCount]:
        counted = Counter(
            (o.channel, o.created_at.replace(minute=0, second=0, microsecond=0))
            for o in self._db.orders.values()
            if o.created_at >= since
        )
        return [
            HourlyCount(channel=channel, hour=hour, count=count)
            for (channel, hour), count in sorted(counted.items())
        ]

    async def ship_by_due(self, *, before: datetime, limit: int) -> Sequence[Order]:
        due = sorted(
            (
                o
                for o in self._db.orders.values()
                if o.status in TO_SHIP and o.ship_by is not None and o.ship_by < before
            ),
            key=lambda o: (o.ship_by, o.id),
        )
        return [copy.deepcopy(o) for o in due[:limit]]

    async def search(self, text: str, *, limit: int) -> Sequence[Order]:
        found = sorted(
            (o for o in self._db.orders.values() if search_matches(o, text)),
            key=lambda o: -o.last_seq,
        )
        return [copy.deepcopy(o) for o in found[:limit]]

    async def order_messages(
        self, channel: str, account: str, order_key: str, *, limit: int
    ) -> Sequence[InboxMessage]:
        found = sorted(
            (
                m
                for m in self._db.inbox.values()
                if (m.channel, m.account, m.order_key) == (channel, account, order_key)
            ),
            key=lambda m: m.seq or 0,
        )
        return [copy.deepcopy(m) for m in found[:limit]]

    async def order_events(self, order_id: str, *, limit: int) -> Sequence[FeedEntry]:
        return [e for e in self._db.feed if e.order_id == order_id][-limit:]


class FakeHealthStore:
    """The in-memory :class:`~orderhub.application.ports.HealthStore` (a note is its own
    transaction: it lands at once)."""

    def __init__(self, db: FakeDatabase) -> None:
        self._db = db

    async def note(
        self, channel: str, account: str, item: str, *, ok: bool, detail: str, at: datetime
    ) -> None:
        key = (channel, account, item)
        before = self._db.health.get(key)
        if ok:
            self._db.health[key] = HealthItem(
                channel=channel, account=account, item=item, ok=True, checked_at=at, last_ok_at=at
            )
            return
        since = before.failing_since if before is not None and before.failing_since else at
        last_ok = before.last_ok_at if before is not None else None
        self._db.health[key] = HealthItem(
            channel=channel,
            account=account,
            item=item,
            ok=False,
            checked_at=at,
            last_ok_at=last_ok,
            failing_since=since,
            detail=detail,
        )

    async def all(self) -> Sequence[HealthItem]:
        return [dataclasses.replace(h) for _, h in sorted(self._db.health.items())]
