"""The feed: one ordered, gapless log of events, written in the same commit as the change.

The pitfall
-----------
With a ``bigserial`` (or any sequence) the number is drawn when the row is inserted, but
the row becomes visible when its transaction commits. Transaction A draws 41, B draws 42,
B commits first: a consumer reading ``after=40`` sees 42, remembers it, and asks for
``after=42`` from then on. When A commits a moment later, 41 is behind the consumer's
cursor and is never read. Sequences also leave holes on rollback, so a consumer cannot
even wait for "the missing one": it cannot tell a hole from a slow transaction.

The design
----------
``feed_counter`` is a single row holding the last sequence number handed out. A writing
transaction's events are numbered by::

    UPDATE feed_counter SET last_seq = last_seq + :n WHERE id = 1 RETURNING last_seq

which takes the row lock, then inserts its ``n`` events numbered ``last_seq - n + 1 ..
last_seq`` (and sets their orders' ``last_seq``); the lock is released when the
transaction ends. So:

* Another transaction that wants numbers blocks on that UPDATE until the holder has
  committed or rolled back, then (READ COMMITTED re-reads the row) continues from the
  committed value. Numbers are therefore drawn in commit order: a transaction with a
  higher ``seq`` always commits after every transaction with a lower one. PostgreSQL makes
  a transaction visible to new snapshots before it releases its locks, so by the time the
  next writer has its numbers, every lower number is already readable.
* A rollback undoes the increment with everything else: the next writer reuses those
  numbers, and the feed has no holes.

Hence a reader that sees ``seq = k`` can already see every ``seq < k``: reading
``seq > after ORDER BY seq`` from the last seq seen never skips an event.

Where the numbering runs (the lock is held from there to the end of the transaction):

* **PostgreSQL**: inside COMMIT. The unit of work's last statement locks the events'
  orders and inserts the events, as arrays, into one row of ``feed_pending``; a deferred
  constraint trigger on it (migration 0009) numbers them in COMMIT's pre-commit step and
  deletes the row. The counter is never held while a client round trip is under way
  (before issue 10: four, each waiting for a busy worker's event loop), only while
  PostgreSQL runs the trigger and flushes the commit. The orders are locked first (in id
  order, in the unit of work's statement): a transaction holding the counter never waits
  for anything. The numbers are not known to the unit of work when COMMIT returns.
* **SQLite**: by a statement right before COMMIT; the database write lock (``BEGIN
  IMMEDIATE``, see ``engine.py``) serialises whole writing transactions anyway.

Transactions without events never touch the counter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from orderhub.adapters.persistence import limits
from orderhub.adapters.persistence.engine import json_dumps
from orderhub.adapters.persistence.mapping import feed_entry_from_row
from orderhub.adapters.persistence.tables import (
    FEED_COUNTER_ID,
    feed_counter,
    feed_events,
    orders,
)
from orderhub.application.access import AccountLimit
from orderhub.application.ports import FeedEntry


@dataclass(frozen=True, kw_only=True, slots=True)
class PendingEvent:
    """An event waiting for its sequence number at commit."""

    type: str
    order_id: str | None
    channel: str | None
    occurred_at: datetime
    data: dict[str, Any]
    account: str | None = None


_APPEND_POSTGRESQL: Final = sa.text(
    """
    WITH locked AS (
        SELECT id FROM orders WHERE id = ANY(CAST(:order_ids AS varchar[]))
        ORDER BY id FOR NO KEY UPDATE
    )
    INSERT INTO feed_pending (types, order_ids, channels, accounts, occurred, data)
    SELECT CAST(:types AS varchar[]), CAST(:order_ids AS varchar[]),
           CAST(:channels AS varchar[]), CAST(:accounts AS varchar[]),
           CAST(:occurred AS timestamptz[]), CAST(:data AS text[])
    WHERE (SELECT count(*) FROM locked) >= 0
    """
)
"""One round trip on PostgreSQL: the events' orders locked, the events left for COMMIT.

The orders are locked here (in id order; the insert's condition needs them), before
COMMIT takes the counter: a transaction holding the counter never waits for an order
row. Else one that saved an order (its row locked) and was waiting for the counter could
be waited for by the holder, stamping the ``last_seq`` of that same order (a command's
outcome): a deadlock, found by ``make chaos`` when the statement took the counter."""

NUMBER_NOW: Final = sa.text("SET CONSTRAINTS feed_pending_number IMMEDIATE")
"""PostgreSQL: number the transaction's pending events now instead of in COMMIT (the
counter is then held until the transaction ends). Tests use it to hold a transaction
between numbering and COMMIT; the hub itself leaves the numbering to COMMIT."""


async def append(connection: AsyncConnection, events: Sequence[PendingEvent]) -> dict[str, int]:
    """Have ``events`` numbered and inserted, and each of their orders' ``last_seq`` set to
    its newest event's number (the orders list pages by it and so inherits the feed's
    gaplessness). Call it last in the transaction, right before COMMIT.

    On PostgreSQL one statement; COMMIT numbers the events (:data:`NUMBER_NOW` does it
    earlier), so the numbers are not known here: returns ``{}``. On SQLite, where the
    database lock serialises whole transactions, the counter is taken here and held until
    the caller commits; returns each order's newest number, by order id."""
    if not events:
        return {}
    if connection.dialect.name == "postgresql":
        await connection.execute(_APPEND_POSTGRESQL, _arrays(events))
        return {}
    last = await _append_generic(connection, events)
    newest: dict[str, int] = {}
    for event, seq in zip(events, range(last - len(events) + 1, last + 1), strict=True):
        if event.order_id is not None:
            newest[event.order_id] = seq
    if newest:
        await connection.execute(
            sa.update(orders).where(orders.c.id == sa.bindparam("order_id")),
            [{"order_id": key, "last_seq": value} for key, value in newest.items()],
        )
    return newest


def _no_counter() -> RuntimeError:
    return RuntimeError("feed_counter has no row: run the migrations (orderhub db upgrade)")


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()}: give it a timezone (UTC)")
    return value.astimezone(UTC)


def _arrays(events: Sequence[PendingEvent]) -> dict[str, list[Any]]:
    return {
        "types": [event.type for event in events],
        "order_ids": [event.order_id for event in events],
        "channels": [event.channel for event in events],
        "accounts": [event.account for event in events],
        "occurred": [_utc(event.occurred_at) for event in events],
        "data": [json_dumps(event.data) for event in events],
    }


async def _append_generic(connection: AsyncConnection, events: Sequence[PendingEvent]) -> int:
    result = await connection.execute(
        sa.update(feed_counter)
        .where(feed_counter.c.id == FEED_COUNTER_ID)
        .values(last_seq=feed_counter.c.last_seq + len(events))
        .returning(feed_counter.c.last_seq)
    )
    last = result.scalar_one_or_none()
    if last is None:
        raise _no_counter()
    await connection.execute(
        sa.insert(feed_events),
        [
            {
                "seq": seq,
                "type": event.type,
                "order_id": event.order_id,
                "channel": event.channel,
                "account": event.account,
                "occurred_at": event.occurred_at,
                "data": event.data,
            }
            for seq, event in zip(range(last - len(events) + 1, last + 1), events, strict=True)
        ],
    )
    return int(last)


async def read(
    connection: AsyncConnection, *, after: int, limit: int, within: AccountLimit | None = None
) -> list[FeedEntry]:
    """Events after ``after``; ``within``: only those of its channels and accounts, in the
    query (a limited reader's page is full of its own events, the others skipped)."""
    if limit <= 0:
        return []
    f = feed_events.c
    query = sa.select(feed_events).where(f.seq > after)
    if within is not None:
        query = query.where(limits.within(within, f.channel, f.account, order_id=f.order_id))
    result = await connection.execute(query.order_by(f.seq).limit(limit))
    return [feed_entry_from_row(row) for row in result.mappings()]
