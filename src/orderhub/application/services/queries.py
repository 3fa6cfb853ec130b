"""Reads for the warehouse: orders, one order with its commands, the feed.

A caller limited to some channels and accounts (``within``) reads only theirs: the lists
and the feed are filtered in the query, and anything else it names is "not found", as if
it did not exist (:func:`ensure_within`)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from orderhub.application.access import AccountLimit, admitted
from orderhub.application.hub import Hub
from orderhub.application.ports import ChannelCommand, FeedEntry, OrderFilter
from orderhub.application.services.common import load_order
from orderhub.application.services.operations import NotFound
from orderhub.domain.errors import DomainError, OrderNotFound
from orderhub.domain.model import Order

FEED_POLL_SECONDS = 0.05
"""A waiting feed read looks again this often: the floor of webhook -> feed latency for a
follower (issue 10: at 0.25 s it alone took most of the 250 ms p99 target). Each look is
a short read on a pooled connection, and long-polls are few (a handful per API key)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class OrderView:
    order: Order
    commands: Sequence[ChannelCommand]


@dataclass(frozen=True, kw_only=True, slots=True)
class FeedPage:
    entries: Sequence[FeedEntry]
    next_cursor: int
    """Where the next read starts: the last event's ``seq``; for a limited reader that saw
    fewer than it asked for, the feed's head (the others' events up to it are skipped)."""


async def ensure_within(
    hub: Hub,
    within: AccountLimit,
    *,
    order_id: str | None = None,
    command_id: str | None = None,
    message_id: str | None = None,
) -> None:
    """Refuse what lies outside ``within`` exactly as what does not exist (the same error
    and message as the use case gives for an unknown id): its existence is not revealed."""
    async with hub.uow(read_only=True) as uow:
        if order_id is not None:
            order = await uow.orders.get(order_id)
            if order is None or not within.admits(order.channel, order.account):
                raise OrderNotFound(f"no order {order_id}")
        if command_id is not None:
            command = await uow.commands.get(command_id)
            if command is None or not within.admits(command.channel, command.account):
                raise NotFound(f"no command {command_id}")
        if message_id is not None:
            message = await uow.inbox.get(message_id)
            if message is None or not within.admits(message.channel, message.account):
                raise NotFound(f"no inbox message {message_id}")


async def get_order(hub: Hub, order_id: str, *, within: AccountLimit | None = None) -> OrderView:
    async with hub.uow(read_only=True) as uow:
        order = await load_order(uow, order_id)
        if not admitted(within, order.channel, order.account):
            raise OrderNotFound(f"no order {order_id}")
        commands = await uow.commands.for_order(order_id)
    return OrderView(order=order, commands=commands)


async def list_orders(
    hub: Hub, filters: OrderFilter, *, after_seq: int | None, limit: int
) -> Sequence[Order]:
    async with hub.uow(read_only=True) as uow:
        return await uow.orders.list(filters, after_seq=after_seq, limit=limit)


class FeedCursorExpired(DomainError):
    """The events after this cursor were pruned (retention): the reader fell too far
    behind and must resynchronise from the orders list."""

    rule = "feed-cursor-expired"


async def read_feed(
    hub: Hub, *, after: int, limit: int, wait_seconds: float = 0
) -> Sequence[FeedEntry]:
    """Events after ``after``; with ``wait_seconds``, hold the call until one arrives."""
    page = await read_feed_page(hub, after=after, limit=limit, wait_seconds=wait_seconds)
    return page.entries


async def read_feed_page(
    hub: Hub,
    *,
    after: int,
    limit: int,
    wait_seconds: float = 0,
    within: AccountLimit | None = None,
) -> FeedPage:
    """Events after ``after`` (only those ``within`` admits, when given); with
    ``wait_seconds``, hold the call until one arrives.

    The cursor is the feed's own sequence for every reader. A limited reader's events are
    read in the query, the others skipped; when it gets fewer than ``limit``, it has seen
    all of its events up to the head read before them (every event up to a committed
    head is readable: see ``adapters/persistence/feed.py``), so its cursor moves to that
    head: an idle reader does not fall behind retention for events it never sees."""
    deadline = asyncio.get_running_loop().time() + wait_seconds
    while True:
        async with hub.uow(read_only=True) as uow:
            head = await uow.feed.head() if within is not None else None
            entries = await uow.feed.read(after=after, limit=limit, within=within)
            if not entries or entries[0].seq != after + 1:
                oldest = await uow.feed.oldest()
                if oldest is not None and after + 1 < oldest:
                    raise FeedCursorExpired(
                        f"events after {after} were pruned; the oldest kept is {oldest}"
                    )
        if entries or asyncio.get_running_loop().time() >= deadline:
            return FeedPage(entries=entries, next_cursor=_next_cursor(after, entries, limit, head))
        await asyncio.sleep(FEED_POLL_SECONDS)


def _next_cursor(after: int, entries: Sequence[FeedEntry], limit: int, head: int | None) -> int:
    last = entries[-1].seq if entries else after
    if head is None or len(entries) >= limit:
        return last
    return max(last, head)
