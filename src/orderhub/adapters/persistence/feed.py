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
``feed_counter`` is a single row holding the last sequence number handed out. At commit,
after everything else the unit of work writes, it runs::

    UPDATE feed_counter SET last_seq = last_seq + :n WHERE id = 1 RETURNING last_seq

which takes the row lock, inserts its ``n`` events numbered ``last_seq - n + 1 ..
last_seq`` (and sets the orders' ``last_seq``), and commits, which releases the lock. On
PostgreSQL the three are one statement (data-modifying CTEs, the events passed as
arrays), so the lock is held across two round trips (that statement, COMMIT) instead
of four. So:

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

The lock serialises only the last moment of writing transactions that have events (the
counter update, the feed insert and the COMMIT itself); the unit of work takes it as late
as possible, after orders, commands and everything else are written and checked. (The
``last_seq`` stamp locks an order row after the counter only for an order that has an
event but was not itself written, such as a ``command.*`` event's: PostgreSQL's deadlock
detector then ends one of two such transactions, which is retried.) Transactions
without events never touch it. On SQLite the database write lock (``BEGIN IMMEDIATE``,
see ``engine.py``) serialises whole writing transactions anyway, so the same statement is
trivially gapless there.
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


@dataclass(frozen=True, slots=True)
class Appended:
    """The numbers :func:`append` used, and each order's newest one (its ``last_seq``)."""

    seqs: range
    newest: dict[str, int]


_APPEND_POSTGRESQL: Final = sa.text(
    """
    WITH locked AS (
        SELECT id FROM orders WHERE id = ANY(CAST(:order_ids AS varchar[]))
        ORDER BY id FOR NO KEY UPDATE
    ), counter AS (
        UPDATE feed_counter SET last_seq = last_seq + :n
        WHERE id = :counter_id AND (SELECT count(*) FROM locked) >= 0
        RETURNING last_seq
    ), inserted AS (
        INSERT INTO feed_events (seq, type, order_id, channel, account, occurred_at, data)
        SELECT counter.last_seq - :n + e.ord, e.type, e.order_id, e.channel, e.account,
               e.occurred_at, e.data::jsonb
        FROM counter,
             unnest(CAST(:types AS varchar[]), CAST(:order_ids AS varchar[]),
                    CAST(:channels AS varchar[]), CAST(:accounts AS varchar[]),
                    CAST(:occurred AS timestamptz[]), CAST(:data AS text[]))
                 WITH ORDINALITY AS e(type, order_id, channel, account, occurred_at, data, ord)
        RETURNING seq, order_id
    ), stamped AS (
        UPDATE orders SET last_seq = newest.seq
        FROM (SELECT order_id, max(seq) AS seq FROM inserted
              WHERE order_id IS NOT NULL GROUP BY order_id) AS newest
        WHERE orders.id = newest.order_id
    )
    SELECT last_seq FROM counter
    """
)
"""One round trip on PostgreSQL: the counter, the events, the orders' ``last_seq``.

The events' orders are locked first (``locked``, in id order; the counter's condition
needs it, so it runs before the counter row is taken): a transaction holding the counter
never waits for an order row. Else one that saved an order (its row locked) and then
appends would wait for the counter, held by one appending an event of that same order (a
command's outcome) and waiting for its row: a deadlock, found by ``make chaos``."""


async def append(connection: AsyncConnection, events: Sequence[PendingEvent]) -> Appended:
    """Number ``events``, insert them and set each of their orders' ``last_seq`` to its
    newest event's number (the orders list pages by it and so inherits the feed's
    gaplessness); holds the counter lock until the caller commits.

    Call it last in the transaction, right before COMMIT. On PostgreSQL this is one
    statement (one round trip while the lock is held, then COMMIT: the lock is held
    across two round trips instead of four); on SQLite, where the database lock
    serialises whole transactions anyway, three."""
    if not events:
        return Appended(range(0), {})
    if connection.dialect.name == "postgresql":
        last = await _append_postgresql(connection, events)
    else:
        last = await _append_generic(connection, events)
    seqs = range(last - len(events) + 1, last + 1)
    newest: dict[str, int] = {}
    for event, seq in zip(events, seqs, strict=True):
        if event.order_id is not None:
            newest[event.order_id] = seq
    if newest and connection.dialect.name != "postgresql":
        await connection.execute(
            sa.update(orders).where(orders.c.id == sa.bindparam("order_id")),
            [{"order_id": key, "last_seq": value} for key, value in newest.items()],
        )
    return Appended(seqs, newest)


def _no_counter() -> RuntimeError:
    return RuntimeError("feed_counter has no row: run the migrations (orderhub db upgrade)")


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()}: give it a timezone (UTC)")
    return value.astimezone(UTC)


async def _append_postgresql(connection: AsyncConnection, events: Sequence[PendingEvent]) -> int:
    result = await connection.execute(
        _APPEND_POSTGRESQL,
        {
            "n": len(events),
            "counter_id": FEED_COUNTER_ID,
            "types": [event.type for event in events],
            "order_ids": [event.order_id for event in events],
            "channels": [event.channel for event in events],
            "accounts": [event.account for event in events],
            "occurred": [_utc(event.occurred_at) for event in events],
            "data": [json_dumps(event.data) for event in events],
        },
    )
    last = result.scalar_one_or_none()
    if last is None:
        raise _no_counter()
    return int(last)


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
