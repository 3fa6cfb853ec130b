"""Round trips to PostgreSQL per unit of work on the hot paths (issue 10), counted, not timed.

A worker's throughput on a busy machine is bounded by the round trips of each job: each
one waits for PostgreSQL and for the event loop again, and the feed counter's lock is held
across the last ones of a writing transaction. These tests count, with SQLAlchemy's engine
events, every statement, ``BEGIN``, ``COMMIT``, ``ROLLBACK`` and pre-ping of:

* a webhook stored (``store_message``, what ``serve`` does before its 2xx: one statement
  in autocommit, ``persistence/intake.py``);
* an inbox message processed by a worker (``jobs.run_inbox``: a new order);
* a warehouse command (``accept_order``, the API's accept);
* a command dispatched by a worker (``jobs.run_dispatch``: the accept at the channel);
* a page of the orders list (``list_orders``).

and hold each to an upper bound: a change that adds round trips to a hot path fails here,
deterministically, whatever the machine's speed. The bounds are the counts the code makes
today. Before issue 10's changes an inbox message took 32 (20 + a pre-ping of three at
each of 4 checkouts), a dispatch 27 and an accept 12: the message and the command were
read once more by the job for its logs, the feed took three statements under its lock,
and every checkout pinged. The claims were step by step (the inbox's five round trips, the
command's six) and each outcome read its row again before its fenced write: an inbox
message took 13, a dispatch 13."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.integration.persistence.pipeline_support import (
    ACCOUNT,
    CHANNEL,
    World,
    make_world,
    order_body,
)

from orderhub.adapters.persistence.repositories import snapshot_of
from orderhub.adapters.queue import jobs
from orderhub.application.ports import OrderFilter
from orderhub.application.services.intake import store_message
from orderhub.application.services.queries import list_orders
from orderhub.application.services.seller_commands import accept_order
from orderhub.domain.values import OrderStatus, Reason

pytestmark = pytest.mark.postgres

STORE_BOUND = 1  # INSERT ... ON CONFLICT, in autocommit (BEGIN and COMMIT before)
INBOX_BOUND = 10  # claim 3 (one UPDATE), apply 6, the order's next message 1 (read-only)
ACCEPT_BOUND = 7  # BEGIN, order, next seq, UPDATE order, INSERT command, feed, COMMIT
DISPATCH_BOUND = 10  # claim 4 (one UPDATE, the order), record 6
LIST_BOUND = 1  # the SELECT (a read-only unit: BEGIN and ROLLBACK before)


@dataclass
class RoundTrips:
    """What the engine sent while :meth:`counting`: statements and transaction verbs."""

    engine: AsyncEngine
    active: bool = False
    sent: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        sync = self.engine.sync_engine

        @event.listens_for(sync, "before_cursor_execute")
        def _statement(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            self._add(" ".join(statement.split())[:100])

        # SQLAlchemy's transaction events fire in autocommit too, where asyncpg sends
        # nothing (no transaction started): only those of a real transaction are counted
        @event.listens_for(sync, "begin")
        def _begin(conn: Any) -> None:
            self._add("BEGIN", conn)

        @event.listens_for(sync, "commit")
        def _commit(conn: Any) -> None:
            self._add("COMMIT", conn)

        @event.listens_for(sync, "rollback")
        def _rollback(conn: Any) -> None:
            self._add("ROLLBACK", conn)

        @event.listens_for(sync.pool, "checkout")
        def _checkout(*_args: Any) -> None:
            if sync.pool._pre_ping:  # BEGIN; ping; ROLLBACK on asyncpg
                self._add("PRE-PING (3 round trips)")
                self._add("")
                self._add("")

    def _add(self, what: str, conn: Any = None) -> None:
        if conn is not None and conn.connection.dbapi_connection.autocommit:
            return
        if self.active:
            self.sent.append(what)

    @contextmanager
    def counting(self) -> Iterator[list[str]]:
        self.sent = []
        self.active = True
        try:
            yield self.sent
        finally:
            self.active = False


async def _store(world: World, channel_order_id: str) -> str:
    stored = await store_message(
        world.hub,
        channel=CHANNEL,
        account=ACCOUNT,
        body=order_body(channel_order_id),
        headers={"webhook-id": f"wh-{channel_order_id}"},
    )
    return stored.message_id


def _show(sent: list[str]) -> str:
    return "\n".join(f"{n:3} {s}" for n, s in enumerate(sent, 1))


async def test_round_trips_of_the_hot_paths_are_bounded(pg_engine: AsyncEngine) -> None:
    world = make_world(pg_engine)
    trips = RoundTrips(pg_engine)
    await world.receive("T-0")  # the first order: connections, caches

    with trips.counting() as stored:
        message_id = await _store(world, "T-1")
    with trips.counting() as processed:
        assert await jobs.run_inbox(world.hub, message_id) == "processed"
    async with world.hub.uow() as uow:
        order = await uow.orders.get_by_channel_id(CHANNEL, ACCOUNT, "T-1")
    assert order is not None
    with trips.counting() as accepted:
        command_id = (await accept_order(world.hub, order_id=order.id)).command_id
    with trips.counting() as dispatched:
        assert await jobs.run_dispatch(world.hub, command_id) == "succeeded"
    with trips.counting() as listed:
        assert len(await list_orders(world.hub, OrderFilter(), after_seq=None, limit=100)) == 2

    report = "\n".join(
        f"{name}: {len(sent)}\n{_show(sent)}"
        for name, sent in [
            ("store", stored),
            ("inbox", processed),
            ("accept", accepted),
            ("dispatch", dispatched),
            ("list", listed),
        ]
    )
    print(report)
    assert len(stored) <= STORE_BOUND, report
    assert len(processed) <= INBOX_BOUND, report
    assert len(accepted) <= ACCEPT_BOUND, report
    assert len(dispatched) <= DISPATCH_BOUND, report
    assert len(listed) <= LIST_BOUND, report


async def test_an_order_read_and_unchanged_is_not_written_and_a_listed_one_is_saved(
    pg_engine: AsyncEngine,
) -> None:
    """Reads take no change-tracking snapshot of a page of orders; a single order read
    is compared at commit and, unchanged, not written; a listed order that a unit of work
    does change (no snapshot to compare with) is written all the same."""
    world = make_world(pg_engine)
    trips = RoundTrips(pg_engine)
    order_id = await world.receive("T-9")

    with trips.counting() as sent:
        async with world.hub.uow() as uow:
            assert await uow.orders.get(order_id) is not None
            await uow.commit()
    assert not [s for s in sent if s.startswith("UPDATE orders")], _show(sent)

    async with world.hub.uow() as uow:
        (listed,) = await uow.orders.list(OrderFilter(), after_seq=None, limit=10)
        listed.order_number = "changed-after-a-list"
        await uow.commit()
    async with world.hub.uow() as uow:
        stored = await uow.orders.get(order_id)
    assert stored is not None
    assert (stored.order_number, stored.version) == ("changed-after-a-list", listed.version)


async def test_an_order_given_equal_extras_in_another_key_order_is_not_written(
    pg_engine: AsyncEngine,
) -> None:
    """PostgreSQL's JSONB keeps an object's keys in its own order (shortest first): an
    order read back and given an equal channel snapshot (its keys in the channel's order)
    has not changed, and must not be written (a new version, a new updated_at)."""
    world = make_world(pg_engine)
    order_id = await world.receive("T-10")
    async with world.hub.uow() as uow:
        order = await uow.orders.get(order_id)
        assert order is not None
        order.extras = {"zeta_long_key": 1, "a": {"yy_long": 2, "b": 3}}
        await uow.commit()
    trips = RoundTrips(pg_engine)
    with trips.counting() as sent:
        async with world.hub.uow() as uow:
            order = await uow.orders.get(order_id)
            assert order is not None
            assert list(order.extras) == ["a", "zeta_long_key"]  # JSONB's own order
            order.extras = {"zeta_long_key": 1, "a": {"yy_long": 2, "b": 3}}  # equal
            await uow.commit()
    assert not [s for s in sent if s.startswith("UPDATE orders")], _show(sent)


async def test_equal_capabilities_built_in_any_order_give_equal_rows(
    pg_engine: AsyncEngine,
) -> None:
    """Frozensets iterate in their own order: equal capability sets built in different
    orders must store the same row (else every snapshot would rewrite its order)."""
    world = make_world(pg_engine)
    order_id = await world.receive("T-11")
    async with world.hub.uow() as uow:
        order = await uow.orders.get(order_id)
    assert order is not None
    words = [f"source-{n}" for n in range(12)]
    statuses = list(OrderStatus)
    rows = set()
    for turn in range(12):
        caps = dataclasses.replace(
            order.capabilities,
            intake=frozenset(words[turn:] + words[:turn]),
            cancellation_reasons={
                reason: frozenset(statuses[turn % 5 :] + statuses[: turn % 5]) for reason in Reason
            },
        )
        rows.add(snapshot_of(dataclasses.replace(order, capabilities=caps)))
    assert len(rows) == 1
