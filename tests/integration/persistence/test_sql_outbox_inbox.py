"""The outbox (channel commands) and the inbox (raw channel messages)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError

from orderhub.adapters.persistence import SqlUnitOfWorkFactory, create_engine
from orderhub.application.ports import (
    ChannelCommand,
    CommandKind,
    CommandState,
    InboxMessage,
    InboxState,
    StoredResponse,
)
from orderhub.domain.errors import ConcurrencyConflict
from orderhub.domain.model import Order

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
MakeOrder = Callable[..., Order]
MakeCommand = Callable[..., ChannelCommand]
MakeMessage = Callable[..., InboxMessage]


async def stored_order(uow_factory: SqlUnitOfWorkFactory, make_order: MakeOrder) -> Order:
    order: Order = make_order()
    async with uow_factory() as uow:
        uow.orders.add(order)
        await uow.commit()
    return order


async def stored_commands(uow_factory: SqlUnitOfWorkFactory, *commands: ChannelCommand) -> None:
    async with uow_factory() as uow:
        for command in commands:
            uow.commands.add(command)
        await uow.commit()


# --- commands ------------------------------------------------------------------------------


async def test_a_command_is_written_with_its_new_order_and_reads_back_whole(
    uow_factory: SqlUnitOfWorkFactory, make_order: MakeOrder, make_command: MakeCommand
) -> None:
    order = make_order()
    command = make_command(order, kind=CommandKind.SHIP)
    command.payload = {"items": [{"line_id": "l", "quantity": 2, "serial_numbers": ["a", "b"]}]}
    async with uow_factory() as uow:
        uow.orders.add(order)  # the order is new too: it is inserted first (foreign key)
        uow.commands.add(command)
        # visible in this unit before commit, as the same object
        assert await uow.commands.get(command.id) is command
        assert [c.id for c in await uow.commands.for_order(order.id)] == [command.id]
        await uow.commit()
    async with uow_factory() as uow:
        loaded = await uow.commands.get(command.id)
        assert await uow.commands.get("no-such-command") is None
    assert loaded == command
    assert type(loaded.kind) is CommandKind
    assert type(loaded.state) is CommandState


async def test_save_updates_a_stored_command(
    uow_factory: SqlUnitOfWorkFactory, make_order: MakeOrder, make_command: MakeCommand
) -> None:
    order = await stored_order(uow_factory, make_order)
    command = make_command(order)
    async with uow_factory() as uow:
        uow.commands.add(command)
        await uow.commit()
    async with uow_factory() as uow:
        loaded = await uow.commands.get(command.id, for_update=True)
        assert loaded is not None
        loaded.state = CommandState.SUCCEEDED
        loaded.attempts = 2
        loaded.result = {"channel_id": "X-1", "nested": {"ok": True}}
        loaded.last_error = None
        loaded.lease_until = T0 + timedelta(minutes=2)
        loaded.finished_at = T0 + timedelta(minutes=1)
        await uow.commands.save(loaded)
        await uow.commit()
    async with uow_factory() as uow:
        again = await uow.commands.get(command.id)
    assert again == loaded


async def test_save_without_commit_is_rolled_back(
    uow_factory: SqlUnitOfWorkFactory, make_order: MakeOrder, make_command: MakeCommand
) -> None:
    order = await stored_order(uow_factory, make_order)
    command = make_command(order)
    async with uow_factory() as uow:
        uow.commands.add(command)
        await uow.commit()
    async with uow_factory() as uow:
        loaded = await uow.commands.get(command.id)
        assert loaded is not None
        loaded.state = CommandState.FAILED
        await uow.commands.save(loaded)
    async with uow_factory() as uow:
        again = await uow.commands.get(command.id)
    assert again is not None
    assert again.state is CommandState.PENDING


async def test_a_command_needs_its_order(
    uow_factory: SqlUnitOfWorkFactory, make_order: MakeOrder, make_command: MakeCommand
) -> None:
    orphan = make_command(make_order())  # the order is never stored
    async with uow_factory() as uow:
        uow.commands.add(orphan)
        with pytest.raises(IntegrityError):
            await uow.commit()


async def test_for_order_lists_that_orders_commands_by_their_seq(
    uow_factory: SqlUnitOfWorkFactory, make_order: MakeOrder, make_command: MakeCommand
) -> None:
    order = await stored_order(uow_factory, make_order)
    other = await stored_order(uow_factory, make_order)
    late = make_command(order, created_at=T0, seq=3)  # the clock says nothing of the order
    early = make_command(order, created_at=T0 + timedelta(minutes=2), seq=1)
    async with uow_factory() as uow:
        uow.commands.add(late)
        uow.commands.add(early)
        uow.commands.add(make_command(other, seq=1))
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.commands.next_seq(order.id) == 4
        pending = make_command(order, seq=2)
        uow.commands.add(pending)
        listed = await uow.commands.for_order(order.id)
        assert await uow.commands.next_seq(order.id) == 4
        assert await uow.commands.next_seq("no-such-order") == 1
    assert [c.id for c in listed] == [early.id, pending.id, late.id]


async def test_a_second_command_with_the_same_seq_is_a_conflict(
    uow_factory: SqlUnitOfWorkFactory, make_order: MakeOrder, make_command: MakeCommand
) -> None:
    order = await stored_order(uow_factory, make_order)
    async with uow_factory() as uow:
        uow.commands.add(make_command(order, seq=1))
        await uow.commit()
    async with uow_factory() as uow:
        uow.commands.add(make_command(order, seq=1))
        with pytest.raises(ConcurrencyConflict):
            await uow.commit()


async def test_due_finds_pending_commands_whose_retry_time_came_and_lease_ran_out(
    uow_factory: SqlUnitOfWorkFactory, make_order: MakeOrder, make_command: MakeCommand
) -> None:
    now = T0 + timedelta(hours=1)
    bound = now - timedelta(seconds=30)

    orders = iter([await stored_order(uow_factory, make_order) for _ in range(11)])

    def due_at(at: datetime, **changes: Any) -> ChannelCommand:
        """A command of an order of its own: nothing of another case comes before it."""
        fields: dict[str, Any] = {"next_attempt_at": at, "queued_at": at, **changes}
        return make_command(next(orders), created_at=T0, **fields)

    failed = due_at(T0, state=CommandState.FAILED)
    cases = {
        "fresh": due_at(T0),
        "retry_due": due_at(now - timedelta(minutes=5)),
        "retry_later": due_at(now + timedelta(1)),
        "lease_over": due_at(T0, lease_until=now - timedelta(seconds=1)),
        "leased": due_at(T0, lease_until=now + timedelta(minutes=1)),
        "queued_recently": due_at(T0, queued_at=bound),  # strictly before the bound only
        "held": due_at(T0, held_by=failed.id),
        "held_by_no_failure": due_at(T0, held_by="a-command-retried-since"),
        "succeeded": due_at(T0, state=CommandState.SUCCEEDED),
        "failed": failed,
        "older": due_at(T0 - timedelta(minutes=1)),
    }
    async with uow_factory() as uow:
        for command in cases.values():
            uow.commands.add(command)
        await uow.commit()
    names = {command.id: name for name, command in cases.items()}
    async with uow_factory() as uow:
        due = await uow.commands.due(now=now, queued_before=bound, limit=10)
        first_two = await uow.commands.due(now=now, queued_before=bound, limit=2)
        failed = await uow.commands.failed(limit=10)
        held = await uow.commands.held(limit=10)
    assert [names[i] for i in due][:1] == ["older"]  # oldest due first
    assert {names[i] for i in due} == {
        "older",
        "fresh",
        "retry_due",
        "lease_over",
        "held_by_no_failure",
    }
    assert first_two == due[:2]
    assert [names[c.id] for c in failed] == ["failed"]
    assert [names[c.id] for c in held] == ["held"]  # not one held by no failure
    async with uow_factory() as uow:
        await uow.commands.mark_queued(due, now)
        await uow.commit()
    async with uow_factory() as uow:  # taken once: the next sweep moves on to others
        assert await uow.commands.due(now=now, queued_before=bound, limit=10) == []


async def test_a_command_behind_an_unfinished_one_of_its_order_is_left_to_it(
    uow_factory: SqlUnitOfWorkFactory, make_order: MakeOrder, make_command: MakeCommand
) -> None:
    """The earlier one ends first and releases it: the sweeper does not keep bringing
    back commands that cannot go yet (they would crowd out a lost one)."""
    order = await stored_order(uow_factory, make_order)
    first = make_command(order, seq=1, next_attempt_at=T0 + timedelta(days=1))  # backing off
    second = make_command(order, seq=2, next_attempt_at=T0, queued_at=T0)
    async with uow_factory() as uow:
        uow.commands.add(first)
        uow.commands.add(second)
        await uow.commit()
    later = T0 + timedelta(hours=1)
    async with uow_factory() as uow:
        assert await uow.commands.due(now=later, queued_before=later, limit=9) == []
        stored = await uow.commands.get(first.id)
        assert stored is not None
        stored.state = CommandState.SUCCEEDED
        await uow.commands.save(stored)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.commands.due(now=later, queued_before=later, limit=9) == [second.id]


async def test_a_command_behind_only_held_ones_is_due_to_be_held_too(
    uow_factory: SqlUnitOfWorkFactory, make_order: MakeOrder, make_command: MakeCommand
) -> None:
    """A command left waiting behind one that was held meanwhile (its claim raced the
    failure) is brought back, to be held too and listed; behind a live one, it is not."""
    order = await stored_order(uow_factory, make_order)
    failed = make_command(order, seq=1, state=CommandState.FAILED)
    held = make_command(order, seq=2, held_by=failed.id)
    waiting = make_command(order, seq=3, next_attempt_at=T0, queued_at=T0)
    await stored_commands(uow_factory, failed, held, waiting)
    later = T0 + timedelta(hours=1)
    async with uow_factory() as uow:
        assert await uow.commands.due(now=later, queued_before=later, limit=9) == [waiting.id]
        stored = await uow.commands.get(held.id)
        assert stored is not None
        assert await uow.commands.set_held(stored, None)  # the operator released it: live
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.commands.due(now=later, queued_before=later, limit=9) == [held.id]


async def test_a_hold_is_written_only_under_the_claim_it_was_read_with(
    uow_factory: SqlUnitOfWorkFactory, make_order: MakeOrder, make_command: MakeCommand
) -> None:
    """A failure holds its followers, and chains through those it held: a follower
    claimed meanwhile (a new fence), or ended, is not held, and says so."""
    order = await stored_order(uow_factory, make_order)
    command = make_command(order, fence=2)
    await stored_commands(uow_factory, command)
    async with uow_factory() as uow:
        stale = await uow.commands.get(command.id)
        assert stale is not None
        stale.fence = 1  # read before a claim that came since
        assert not await uow.commands.set_held(stale, "failed-one")
        fresh = await uow.commands.get(command.id)
        assert fresh is not None
        assert fresh.held_by is None
        fresh.state = CommandState.SUCCEEDED
        await uow.commands.save(fresh)
        assert not await uow.commands.set_held(fresh, "failed-one")  # ended: not held
        await uow.commit()
    async with uow_factory() as uow:
        ended = await uow.commands.get(command.id)
    assert ended is not None
    assert (ended.state, ended.held_by) == (CommandState.SUCCEEDED, None)


async def test_a_fenced_save_writes_only_under_its_claim(
    uow_factory: SqlUnitOfWorkFactory, make_order: MakeOrder, make_command: MakeCommand
) -> None:
    order = await stored_order(uow_factory, make_order)
    command = make_command(order, fence=2)
    async with uow_factory() as uow:
        uow.commands.add(command)
        await uow.commit()
    async with uow_factory() as uow:
        stale = await uow.commands.get(command.id)
        assert stale is not None
        stale.state = CommandState.FAILED
        assert not await uow.commands.save(stale, fence=1)  # an older claim: nothing written
        fresh = await uow.commands.get(command.id)
        assert fresh is not None
        fresh.state = CommandState.SUCCEEDED
        assert await uow.commands.save(fresh, fence=2)
        assert not await uow.commands.save(fresh, fence=2)  # ended: no second outcome
        await uow.commit()
    async with uow_factory() as uow:
        stored = await uow.commands.get(command.id)
    assert stored is not None
    assert stored.state is CommandState.SUCCEEDED


@pytest.mark.postgres
async def test_for_update_makes_a_second_claimant_wait(
    postgres_url: str, make_order: MakeOrder, make_command: MakeCommand
) -> None:
    """dispatch_command claims a command with for_update: two workers never both see it
    unclaimed."""
    engine = create_engine(postgres_url)
    factory = SqlUnitOfWorkFactory(engine)
    try:
        order = await stored_order(factory, make_order)
        command = make_command(order)
        async with factory() as uow:
            uow.commands.add(command)
            await uow.commit()

        async def claim(uow_name: str, hold: float) -> tuple[str, int]:
            async with factory() as uow:
                loaded = await uow.commands.get(command.id, for_update=True)
                assert loaded is not None
                seen = loaded.attempts
                loaded.attempts += 1
                await uow.commands.save(loaded)
                await asyncio.sleep(hold)
                await uow.commit()
            return uow_name, seen

        first = asyncio.create_task(claim("first", hold=0.3))
        await asyncio.sleep(0.1)
        second = asyncio.create_task(claim("second", hold=0))
        assert await first == ("first", 0)
        assert await second == ("second", 1)  # it waited, then read the committed claim
    finally:
        await engine.dispose()


# --- inbox ---------------------------------------------------------------------------------


async def test_add_is_false_for_a_dedupe_key_already_stored(
    uow_factory: SqlUnitOfWorkFactory, make_message: MakeMessage
) -> None:
    original = make_message("topi:main:id:msg-1", body=b"first")
    async with uow_factory() as uow:
        assert await uow.inbox.add(original) is True
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.inbox.add(make_message("topi:main:id:msg-1", body=b"second")) is False
        assert await uow.inbox.add(make_message("topi:main:id:msg-2")) is True
        await uow.commit()
    async with uow_factory() as uow:
        kept = await uow.inbox.get(original.id)
    assert kept == original  # the first body is kept, bytes and headers intact


async def test_add_in_the_same_unit_twice_is_a_duplicate(
    uow_factory: SqlUnitOfWorkFactory, make_message: MakeMessage
) -> None:
    async with uow_factory() as uow:
        assert await uow.inbox.add(make_message("k")) is True
        assert await uow.inbox.add(make_message("k")) is False
        await uow.commit()


@pytest.mark.postgres
async def test_concurrent_adds_of_one_message_store_it_once(
    postgres_url: str, make_message: MakeMessage
) -> None:
    engine = create_engine(postgres_url)
    factory = SqlUnitOfWorkFactory(engine)
    try:

        async def deliver() -> bool:
            async with factory() as uow:
                new = await uow.inbox.add(make_message("retried-webhook"))
                await asyncio.sleep(0.05)  # both inserts are in flight together
                await uow.commit()
                return new

        results = await asyncio.gather(*(deliver() for _ in range(5)))
        assert sorted(results) == [False, False, False, False, True]
    finally:
        await engine.dispose()


async def test_save_and_the_operator_queries(
    uow_factory: SqlUnitOfWorkFactory, make_message: MakeMessage
) -> None:
    bound = T0 + timedelta(minutes=10)
    old = make_message("old", received_at=T0)
    older = make_message("older", received_at=T0 - timedelta(minutes=1))
    recent = make_message("recent", received_at=bound)  # strictly before the bound only
    broken = make_message("broken", received_at=T0)
    done = make_message("done", received_at=T0)
    async with uow_factory() as uow:
        for message in (old, older, recent, broken, done):
            await uow.inbox.add(message)
        await uow.commit()
    async with uow_factory() as uow:
        loaded = await uow.inbox.get(broken.id, for_update=True)
        assert loaded is not None
        loaded.state = InboxState.FAILED
        loaded.attempts = 1
        loaded.last_error = "ValueError: no lines"
        await uow.inbox.save(loaded)
        finished = await uow.inbox.get(done.id)
        assert finished is not None
        finished.state = InboxState.PROCESSED
        finished.processed_at = T0 + timedelta(minutes=1)
        await uow.inbox.save(finished)
        await uow.commit()
    async with uow_factory() as uow:
        due = await uow.inbox.due(now=bound, queued_before=bound, limit=10)
        assert await uow.inbox.due(now=bound, queued_before=bound, limit=1) == [older.id]
        failed = await uow.inbox.failed(limit=10)
        again = await uow.inbox.get(done.id)
        assert await uow.inbox.get("no-such-message") is None
    assert due == [older.id, old.id]  # received only, queued strictly before, oldest first
    assert [m.id for m in failed] == [broken.id]
    assert failed[0].last_error == "ValueError: no lines"
    assert type(failed[0].state) is InboxState
    assert again == finished


async def test_a_binary_body_is_kept_byte_for_byte(
    uow_factory: SqlUnitOfWorkFactory, make_message: MakeMessage
) -> None:
    body = bytes(range(256)) * 4 + b"\x00\xff{not json"
    message = make_message("binary", body=body)
    async with uow_factory() as uow:
        await uow.inbox.add(message)
        await uow.commit()
    async with uow_factory() as uow:
        loaded = await uow.inbox.get(message.id)
    assert loaded is not None
    assert loaded.body == body
    assert type(loaded.body) is bytes


# --- cursors and idempotency keys -------------------------------------------------------------


async def test_cursors_are_kept_per_channel_account_and_name(
    uow_factory: SqlUnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        assert await uow.cursors.get("octopia", "main", "orders") is None
        await uow.cursors.set("octopia", "main", "orders", "2026-03-01T00:00:00Z")
        await uow.cursors.set("octopia", "main", "orders", "2026-03-02T00:00:00Z")  # moves on
        await uow.cursors.set("octopia", "second", "orders", "a")
        await uow.cursors.set("octopia", "main", "returns", "b")
        await uow.cursors.set("topi", "main", "orders", "c")
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.cursors.get("octopia", "main", "orders") == "2026-03-02T00:00:00Z"
        assert await uow.cursors.get("octopia", "second", "orders") == "a"
        assert await uow.cursors.get("octopia", "main", "returns") == "b"
        assert await uow.cursors.get("topi", "main", "orders") == "c"
        await uow.cursors.set("topi", "main", "orders", "not committed")
    async with uow_factory() as uow:
        assert await uow.cursors.get("topi", "main", "orders") == "c"


async def test_idempotency_keys_keep_the_first_answer(
    uow_factory: SqlUnitOfWorkFactory,
) -> None:
    first = StoredResponse(
        key="key-1",
        fingerprint="sha256:abc",
        status_code=202,
        body={"command_id": "c-1", "details": {"lines": [1, 2]}, "state": "pending"},
    )
    async with uow_factory() as uow:
        assert await uow.idempotency.get("key-1") is None
        await uow.idempotency.put(first)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.idempotency.get("key-1") == first
        with pytest.raises(ConcurrencyConflict, match="stored meanwhile"):
            await uow.idempotency.put(
                StoredResponse(key="key-1", fingerprint="other", status_code=202, body={})
            )
    async with uow_factory() as uow:
        assert await uow.idempotency.get("key-1") == first
        await uow.idempotency.put(
            StoredResponse(key="key-2", fingerprint="f", status_code=202, body={})
        )
    async with uow_factory() as uow:
        assert await uow.idempotency.get("key-2") is None  # not committed


async def test_id_for_finds_the_message_stored_under_a_dedupe_key(
    uow_factory: SqlUnitOfWorkFactory, make_message: MakeMessage
) -> None:
    async with uow_factory() as uow:
        original = make_message("topi:main:id:msg-9")
        assert await uow.inbox.add(original) is True
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.inbox.id_for("topi:main:id:msg-9") == original.id
        assert await uow.inbox.id_for("topi:main:id:unknown") is None
