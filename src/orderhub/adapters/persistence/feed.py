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
from datetime import datetime
from typing import Any, Final
from weakref import WeakSet

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncConnection

from orderhub.adapters.persistence import limits
from orderhub.adapters.persistence.engine import json_dumps
from orderhub.adapters.persistence.mapping import feed_entry_from_row, utc
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


_LOCK_ORDERS: Final = """
    WITH locked AS (
        SELECT id FROM orders WHERE id = ANY(CAST(:order_ids AS varchar[]))
        ORDER BY id FOR NO KEY UPDATE
    )"""

_APPEND_POSTGRESQL: Final = sa.text(
    _LOCK_ORDERS
    + """
    INSERT INTO feed_pending (types, order_ids, channels, accounts, occurred, data)
    SELECT CAST(:types AS varchar[]), CAST(:order_ids AS varchar[]),
           CAST(:channels AS varchar[]), CAST(:accounts AS varchar[]),
           CAST(:occurred AS timestamptz[]), CAST(:data AS jsonb[])
    WHERE (SELECT count(*) FROM locked) >= 0
    """
)
"""One round trip on PostgreSQL: the events' orders locked, the events left for COMMIT
(their JSON parsed and checked here, not while COMMIT holds the counter).

The orders are locked here (in id order; the insert's condition needs them), before
COMMIT takes the counter: a transaction holding the counter never waits for an order
row. Else one that saved an order (its row locked) and was waiting for the counter could
be waited for by the holder, stamping the ``last_seq`` of that same order (a command's
outcome): a deadlock, found by ``make chaos`` when the statement took the counter."""

_APPEND_POSTGRESQL_BEFORE_0009: Final = sa.text(
    _LOCK_ORDERS
    + """, counter AS (
        UPDATE feed_counter SET last_seq = last_seq + :n
        WHERE id = :counter_id AND (SELECT count(*) FROM locked) >= 0
        RETURNING last_seq
    ), inserted AS (
        INSERT INTO feed_events (seq, type, order_id, channel, account, occurred_at, data)
        SELECT counter.last_seq - :n + e.ord, e.type, e.order_id, e.channel, e.account,
               e.occurred_at, e.data
        FROM counter,
             unnest(CAST(:types AS varchar[]), CAST(:order_ids AS varchar[]),
                    CAST(:channels AS varchar[]), CAST(:accounts AS varchar[]),
                    CAST(:occurred AS timestamptz[]), CAST(:data AS jsonb[]))
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
"""A database not yet at migration 0009 (no ``feed_pending``: this version rolled out
before ``orderhub migrate`` ran): the counter taken in the statement, held until COMMIT,
as before 0009. The same lock as the trigger's, so both kinds of writers mix safely."""

_HAS_PENDING: Final = sa.text("SELECT to_regclass('feed_pending') IS NOT NULL")
_UNDEFINED_TABLE: Final = "42P01"

_numbered_at_commit: WeakSet[Engine] = WeakSet()
"""Engines whose database has ``feed_pending`` (migration 0009): asked once per engine."""


async def append(connection: AsyncConnection, events: Sequence[PendingEvent]) -> None:
    """Have ``events`` numbered and inserted, and each of their orders' ``last_seq`` set to
    its newest event's number (the orders list pages by it and so inherits the feed's
    gaplessness). Call it last in the transaction, right before COMMIT.

    On PostgreSQL one statement, and COMMIT numbers the events. On SQLite, where the
    database lock serialises whole transactions, the counter is taken here and held until
    the caller commits. Either way the numbers are not handed back: an order object's
    ``last_seq`` stays as it was read."""
    if not events:
        return
    if connection.dialect.name != "postgresql":
        await _append_generic(connection, events)
        return
    engine = connection.sync_engine
    if engine not in _numbered_at_commit:
        if not (await connection.execute(_HAS_PENDING)).scalar_one():
            await append_in_statement(connection, events)
            return
        _numbered_at_commit.add(engine)
    try:
        await connection.execute(_APPEND_POSTGRESQL, _arrays(events))
    except sa.exc.DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) == _UNDEFINED_TABLE:
            # feed_pending is gone (a downgrade, a restore from before 0009): this write
            # fails and is retried, and the next one asks again instead of failing too
            _numbered_at_commit.discard(engine)
        raise


async def append_in_statement(connection: AsyncConnection, events: Sequence[PendingEvent]) -> None:
    """PostgreSQL before migration 0009: number ``events`` in this statement, the counter
    held from here until the caller's COMMIT (what a database not yet migrated gets, and
    what a process older than 0009 does: the tests' writers from before a rolling upgrade)."""
    params = {**_arrays(events), "n": len(events), "counter_id": FEED_COUNTER_ID}
    result = await connection.execute(_APPEND_POSTGRESQL_BEFORE_0009, params)
    if result.scalar_one_or_none() is None:
        raise _no_counter()


def _no_counter() -> RuntimeError:
    return RuntimeError("feed_counter has no row: run the migrations (orderhub migrate)")


def _arrays(events: Sequence[PendingEvent]) -> dict[str, list[Any]]:
    return {
        "types": [event.type for event in events],
        "order_ids": [event.order_id for event in events],
        "channels": [event.channel for event in events],
        "accounts": [event.account for event in events],
        "occurred": [utc(event.occurred_at) for event in events],
        "data": [json_dumps(event.data) for event in events],
    }


async def _append_generic(connection: AsyncConnection, events: Sequence[PendingEvent]) -> None:
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
    newest: dict[str, int] = {}
    for event, seq in zip(events, range(last - len(events) + 1, last + 1), strict=True):
        if event.order_id is not None:
            newest[event.order_id] = seq
    if newest:
        await connection.execute(
            sa.update(orders).where(orders.c.id == sa.bindparam("order_id")),
            [{"order_id": key, "last_seq": value} for key, value in newest.items()],
        )


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
