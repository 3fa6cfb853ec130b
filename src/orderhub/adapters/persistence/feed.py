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
last_seq``, and commits, which releases the lock. So:

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
as possible, after orders, commands and everything else are written and checked, and
nothing after it takes another lock, so it cannot deadlock with order rows. Transactions
without events never touch it. On SQLite the database write lock (``BEGIN IMMEDIATE``,
see ``engine.py``) serialises whole writing transactions anyway, so the same statement is
trivially gapless there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from orderhub.adapters.persistence import limits
from orderhub.adapters.persistence.mapping import feed_entry_from_row
from orderhub.adapters.persistence.tables import FEED_COUNTER_ID, feed_counter, feed_events
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


async def append(connection: AsyncConnection, events: Sequence[PendingEvent]) -> range:
    """Number ``events`` and insert them; holds the counter lock until the caller commits.

    Call it last in the transaction, right before COMMIT. Returns the numbers used."""
    if not events:
        return range(0)
    result = await connection.execute(
        sa.update(feed_counter)
        .where(feed_counter.c.id == FEED_COUNTER_ID)
        .values(last_seq=feed_counter.c.last_seq + len(events))
        .returning(feed_counter.c.last_seq)
    )
    last = result.scalar_one_or_none()
    if last is None:
        raise RuntimeError("feed_counter has no row: run the migrations (orderhub db upgrade)")
    seqs = range(last - len(events) + 1, last + 1)
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
            for seq, event in zip(seqs, events, strict=True)
        ],
    )
    return seqs


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
        query = query.where(limits.within(within, f.channel, f.account))
    result = await connection.execute(query.order_by(f.seq).limit(limit))
    return [feed_entry_from_row(row) for row in result.mappings()]
