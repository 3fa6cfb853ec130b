"""Reads for the warehouse: orders, one order with its commands, the feed."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from orderhub.application.hub import Hub
from orderhub.application.ports import ChannelCommand, FeedEntry, OrderFilter
from orderhub.application.services.common import load_order
from orderhub.domain.errors import DomainError
from orderhub.domain.model import Order

FEED_POLL_SECONDS = 0.25


@dataclass(frozen=True, kw_only=True, slots=True)
class OrderView:
    order: Order
    commands: Sequence[ChannelCommand]


async def get_order(hub: Hub, order_id: str) -> OrderView:
    async with hub.uow() as uow:
        order = await load_order(uow, order_id)
        commands = await uow.commands.for_order(order_id)
    return OrderView(order=order, commands=commands)


async def list_orders(
    hub: Hub, filters: OrderFilter, *, after_seq: int | None, limit: int
) -> Sequence[Order]:
    async with hub.uow() as uow:
        return await uow.orders.list(filters, after_seq=after_seq, limit=limit)


class FeedCursorExpired(DomainError):
    """The events after this cursor were pruned (retention): the reader fell too far
    behind and must resynchronise from the orders list."""

    rule = "feed-cursor-expired"


async def read_feed(
    hub: Hub, *, after: int, limit: int, wait_seconds: float = 0
) -> Sequence[FeedEntry]:
    """Events after ``after``; with ``wait_seconds``, hold the call until one arrives."""
    deadline = asyncio.get_running_loop().time() + wait_seconds
    while True:
        async with hub.uow() as uow:
            entries = await uow.feed.read(after=after, limit=limit)
            if not entries or entries[0].seq != after + 1:
                oldest = await uow.feed.oldest()
                if oldest is not None and after + 1 < oldest:
                    raise FeedCursorExpired(
                        f"events after {after} were pruned; the oldest kept is {oldest}"
                    )
        if entries or asyncio.get_running_loop().time() >= deadline:
            return entries
        await asyncio.sleep(FEED_POLL_SECONDS)
