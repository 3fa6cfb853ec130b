"""Reads for an operator: what needs a person now, how far behind the hub is, one order with
everything around it (its commands, raw messages and feed events), and order search."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from orderhub.application.hub import Hub
from orderhub.application.ports import (
    Backlog,
    ChannelActivity,
    ChannelCommand,
    FeedEntry,
    HealthItem,
    HourlyCount,
    InboxMessage,
    OrderFilter,
    StatusCount,
)
from orderhub.application.services.common import load_order
from orderhub.application.services.intake import storable_order_key
from orderhub.application.services.operations import NotFound
from orderhub.domain.model import Order

SHIP_BY_WARNING: Final = timedelta(hours=24)
"""Orders whose ship-by is closer than this are shown as near their deadline."""
CHART_HOURS: Final = 48
MAX_SEARCH_LENGTH: Final = 200


@dataclass(frozen=True, kw_only=True, slots=True)
class Overview:
    now: datetime
    status_counts: Sequence[StatusCount]
    attention: Sequence[Order]
    failed_commands: Sequence[ChannelCommand]
    held_commands: Sequence[ChannelCommand]
    failed_messages: Sequence[InboxMessage]
    ship_by_due: Sequence[Order]
    inbox: Backlog
    commands: Backlog
    feed_head: int
    activity: Sequence[ChannelActivity]
    health: Sequence[HealthItem]
    received_per_hour: Sequence[HourlyCount]
    chart_since: datetime


async def overview(hub: Hub, *, limit: int = 50) -> Overview:
    now = hub.clock.now()
    since = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=CHART_HOURS - 1)
    async with hub.uow() as uow:
        reads = uow.overview
        return Overview(
            now=now,
            status_counts=await reads.status_counts(),
            attention=await uow.orders.list(
                OrderFilter(attention=True), after_seq=None, limit=limit
            ),
            failed_commands=await uow.commands.failed(limit=limit),
            held_commands=await uow.commands.held(limit=limit),
            failed_messages=await uow.inbox.failed(limit=limit),
            ship_by_due=await reads.ship_by_due(before=now + SHIP_BY_WARNING, limit=limit),
            inbox=await reads.inbox_backlog(),
            commands=await reads.command_backlog(),
            feed_head=await reads.feed_head(),
            activity=await reads.channel_activity(),
            health=await uow.health.all(),
            received_per_hour=await reads.received_per_hour(since=since),
            chart_since=since,
        )


def search_matches(order: Order, text: str) -> bool:
    """What :meth:`OverviewReader.search` promises, for stores that can only narrow down:
    the text is in the channel order id, the order number, the customer or a line's SKU."""
    needle = text.casefold()
    customer = order.customer
    people = () if customer is None else (customer.name, customer.email, customer.company)
    fields = [
        order.channel_order_id,
        order.order_number,
        *people,
        *(line.sku for line in order.lines),
    ]
    return any(needle in value.casefold() for value in fields if value)


async def search_orders(hub: Hub, text: str, *, limit: int = 50) -> Sequence[Order]:
    text = text.strip()[:MAX_SEARCH_LENGTH]
    if not text:
        return []
    async with hub.uow() as uow:
        return await uow.overview.search(text, limit=limit)


@dataclass(frozen=True, kw_only=True, slots=True)
class OrderFile:
    """One order with everything an operator looks at."""

    order: Order
    commands: Sequence[ChannelCommand]
    events: Sequence[FeedEntry]


async def order_file(hub: Hub, order_id: str, *, events: int = 200) -> OrderFile:
    async with hub.uow() as uow:
        order = await load_order(uow, order_id)
        return OrderFile(
            order=order,
            commands=await uow.commands.for_order(order_id),
            events=await uow.overview.order_events(order_id, limit=events),
        )


async def order_messages(hub: Hub, order_id: str, *, limit: int = 100) -> Sequence[InboxMessage]:
    """The raw messages the order's channel sent about it, by arrival."""
    async with hub.uow() as uow:
        order = await load_order(uow, order_id)
        return await uow.overview.order_messages(
            order.channel,
            order.account,
            storable_order_key(order.channel_order_id),
            limit=limit,
        )


async def find_command(hub: Hub, command_id: str) -> ChannelCommand:
    async with hub.uow() as uow:
        command = await uow.commands.get(command_id)
    if command is None:
        raise NotFound(f"no command {command_id}")
    return command


async def inbox_message(hub: Hub, message_id: str) -> InboxMessage | None:
    async with hub.uow() as uow:
        return await uow.inbox.get(message_id)
