"""The inbox's claim in one statement and its fenced finish, on SQLite and PostgreSQL.

``claim`` takes a message only when every check the step-by-step claim makes holds
(received, due, not leased, under the attempt cap, no earlier received message of its
order), and leaves the row as it was otherwise; ``finish`` marks it processed only under
the claim it was taken with."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from orderhub.adapters.persistence import SqlUnitOfWorkFactory, create_engine
from orderhub.application.ports import InboxMessage, InboxState

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
LEASE = timedelta(seconds=30)
CAP = 3
MakeMessage = Callable[..., InboxMessage]


async def _stored(factory: SqlUnitOfWorkFactory, *messages: InboxMessage) -> None:
    async with factory() as uow:
        for message in messages:
            assert await uow.inbox.add(message)
        await uow.commit()


async def _claim(
    factory: SqlUnitOfWorkFactory, message_id: str, now: datetime = T0
) -> InboxMessage | None:
    async with factory() as uow:
        claimed = await uow.inbox.claim(
            message_id, now=now, lease_until=now + LEASE, max_attempts=CAP
        )
        await uow.commit()
    return claimed


async def _read(factory: SqlUnitOfWorkFactory, message_id: str) -> InboxMessage:
    async with factory() as uow:
        message = await uow.inbox.get(message_id)
    assert message is not None
    return message


def _with_order(message: InboxMessage, order_key: str | None) -> InboxMessage:
    return dataclasses.replace(message, order_key=order_key)


async def test_a_claim_takes_the_message_and_a_second_waits_for_the_lease(
    uow_factory: SqlUnitOfWorkFactory, make_message: MakeMessage
) -> None:
    message = _with_order(make_message("m-1", received_at=T0 - timedelta(seconds=1)), "CO-1")
    await _stored(uow_factory, message)

    claimed = await _claim(uow_factory, message.id)
    assert claimed is not None
    assert (claimed.attempts, claimed.fence, claimed.lease_until) == (1, 1, T0 + LEASE)
    assert claimed.body == message.body
    assert claimed.headers == message.headers
    assert claimed.seq == message.seq
    assert claimed.state is InboxState.RECEIVED
    assert await _read(uow_factory, message.id) == claimed  # as stored

    assert await _claim(uow_factory, message.id, T0 + LEASE - timedelta(seconds=1)) is None
    again = await _claim(uow_factory, message.id, T0 + LEASE)  # the lease ran out
    assert again is not None
    assert (again.attempts, again.fence) == (2, 2)


@pytest.mark.parametrize(
    "why", ["not due", "at the cap", "processed", "failed", "an earlier one of its order"]
)
async def test_a_claim_leaves_a_message_that_cannot_be_claimed_as_it_was(
    uow_factory: SqlUnitOfWorkFactory, make_message: MakeMessage, why: str
) -> None:
    earlier = _with_order(make_message("m-0", received_at=T0), "CO-1")
    other_order = _with_order(make_message("m-x", received_at=T0), "CO-2")
    message = _with_order(make_message("m-1", received_at=T0), "CO-1")
    if why == "not due":
        message.next_attempt_at = T0 + timedelta(seconds=1)
    elif why == "at the cap":
        message.attempts = CAP
    elif why in ("processed", "failed"):
        message.state = InboxState(why)
    if why == "an earlier one of its order":
        await _stored(uow_factory, other_order, earlier, message)
    else:
        await _stored(uow_factory, other_order, message)
    before = await _read(uow_factory, message.id)

    assert await _claim(uow_factory, message.id) is None
    assert await _read(uow_factory, message.id) == before
    if why == "an earlier one of its order":  # once that one is processed, it goes
        async with uow_factory() as uow:
            assert await uow.inbox.finish(earlier.id, fence=0, at=T0)
            await uow.commit()
        assert await _claim(uow_factory, message.id) is not None


async def test_only_an_earlier_message_of_the_same_channel_account_and_order_holds_it(
    uow_factory: SqlUnitOfWorkFactory, make_message: MakeMessage
) -> None:
    elsewhere = [
        dataclasses.replace(_with_order(make_message(f"elsewhere-{n}"), "CO-1"), **where)
        for n, where in enumerate([{"account": "other"}, {"channel": "topi"}])
    ]
    other_order = _with_order(make_message("m-x"), "CO-2")
    message = _with_order(make_message("m-1"), "CO-1")
    await _stored(uow_factory, *elsewhere, other_order, message)
    assert all((m.seq or 0) < (message.seq or 0) for m in elsewhere)  # earlier, received
    assert await _claim(uow_factory, message.id) is not None


async def test_a_message_without_an_order_key_waits_for_nothing(
    uow_factory: SqlUnitOfWorkFactory, make_message: MakeMessage
) -> None:
    first = _with_order(make_message("m-0", received_at=T0), None)
    second = _with_order(make_message("m-1", received_at=T0), None)
    await _stored(uow_factory, first, second)
    assert await _claim(uow_factory, second.id) is not None
    assert await _claim(uow_factory, "no-such-message") is None


async def test_finish_marks_processed_only_under_its_claim(
    uow_factory: SqlUnitOfWorkFactory, make_message: MakeMessage
) -> None:
    message = make_message("m-1", received_at=T0)
    await _stored(uow_factory, message)
    first = await _claim(uow_factory, message.id)
    second = await _claim(uow_factory, message.id, T0 + LEASE)  # took it over
    assert first is not None
    assert second is not None

    async with uow_factory() as uow:
        assert not await uow.inbox.finish(message.id, fence=first.fence, at=T0)  # lost it
        assert await uow.inbox.finish(message.id, fence=second.fence, at=T0 + LEASE)
        assert not await uow.inbox.finish(message.id, fence=second.fence, at=T0 + LEASE)
        await uow.commit()
    done = await _read(uow_factory, message.id)
    assert (done.state, done.processed_at, done.lease_until) == (
        InboxState.PROCESSED,
        T0 + LEASE,
        None,
    )
    assert done.fence == second.fence
    assert done.attempts == 2


async def test_finish_rolled_back_leaves_the_claim(
    uow_factory: SqlUnitOfWorkFactory, make_message: MakeMessage
) -> None:
    message = make_message("m-1", received_at=T0)
    await _stored(uow_factory, message)
    claimed = await _claim(uow_factory, message.id)
    assert claimed is not None
    async with uow_factory() as uow:
        assert await uow.inbox.finish(message.id, fence=claimed.fence, at=T0)
    assert await _read(uow_factory, message.id) == claimed  # no commit: still claimed


@pytest.mark.postgres
async def test_concurrent_claims_of_one_message_give_it_to_one(
    postgres_url: str, make_message: MakeMessage
) -> None:
    """Each claimant holds its claim uncommitted a moment: the others wait on the row, then
    find it leased (PostgreSQL re-reads the row they waited for)."""
    engine = create_engine(postgres_url)
    factory = SqlUnitOfWorkFactory(engine)
    try:
        message = make_message("m-1", received_at=T0)
        await _stored(factory, message)

        async def claim() -> int | None:
            async with factory() as uow:
                claimed = await uow.inbox.claim(
                    message.id, now=T0, lease_until=T0 + LEASE, max_attempts=CAP
                )
                await asyncio.sleep(0.05)
                await uow.commit()
            return None if claimed is None else claimed.fence

        fences = await asyncio.gather(*(claim() for _ in range(5)))
        assert sorted(fences, key=lambda f: f or 0) == [None, None, None, None, 1]
        assert (await _read(factory, message.id)).attempts == 1
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_a_claim_beside_the_earlier_messages_uncommitted_apply_takes_nothing(
    postgres_url: str, make_message: MakeMessage
) -> None:
    """The later message's claim runs while the earlier one's apply is uncommitted: it is
    not claimed (the earlier one still counts as received), and claims once that commits."""
    engine = create_engine(postgres_url)
    factory = SqlUnitOfWorkFactory(engine)
    try:
        earlier = _with_order(make_message("m-0", received_at=T0), "CO-1")
        later = _with_order(make_message("m-1", received_at=T0), "CO-1")
        await _stored(factory, earlier, later)
        first = await _claim(factory, earlier.id)
        assert first is not None
        async with factory() as applying:
            assert await applying.inbox.finish(earlier.id, fence=first.fence, at=T0)
            assert await _claim(factory, later.id) is None
            await applying.commit()
        assert await _claim(factory, later.id) is not None
    finally:
        await engine.dispose()
