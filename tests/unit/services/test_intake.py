"""Intake: store before acknowledging, dedupe, apply at least once, keep what fails."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from orderhub.application.hub import RetryPolicy
from orderhub.application.ports import CommandKind, InboxState
from orderhub.application.services.common import CONFLICT_RETRIES, MAX_ERROR_LENGTH, clip
from orderhub.application.services.intake import (
    Processed,
    Stored,
    process_message,
    store_message,
)
from orderhub.application.services.operations import failed_messages, retry_message, sweep
from orderhub.channels.spi import TransientChannelError
from orderhub.domain.errors import InvalidTransition
from orderhub.domain.values import OrderStatus

from .support import ACCOUNT, World, make_world, order_doc


async def store(world: World, body: bytes, headers: dict[str, str] | None = None) -> Stored:
    return await store_message(
        world.hub, channel="testchannel", account=ACCOUNT, body=body, headers=headers or {}
    )


async def test_a_message_is_stored_and_queued_once_per_webhook_id() -> None:
    world = make_world("topi")
    body = json.dumps(order_doc()).encode()

    first = await store(world, body, {"webhook-id": "msg-1"})
    again = await store(world, body + b" ", {"webhook-id": "msg-1"})

    assert not first.duplicate
    assert again.duplicate
    assert again.message_id == first.message_id  # the duplicate names the stored message
    assert list(world.db.inbox) == [first.message_id]
    assert world.queue.messages == [first.message_id]  # CheckingQueue: stored first
    stored = world.db.inbox[first.message_id]
    assert stored.state is InboxState.RECEIVED
    assert stored.dedupe_key == "testchannel:main:id:msg-1"
    assert stored.body == body


async def test_without_an_id_the_body_is_the_key() -> None:
    world = make_world("topi")
    body = json.dumps(order_doc()).encode()
    assert not (await store(world, body)).duplicate
    assert (await store(world, body)).duplicate
    assert not (await store(world, json.dumps(order_doc(status="x")).encode())).duplicate
    assert len(world.queue.messages) == 2


async def test_processing_creates_the_order_once_and_marks_processed() -> None:
    world = make_world("topi")
    first = await store(world, json.dumps(order_doc()).encode(), {"webhook-id": "a"})
    second = await store(
        world,
        json.dumps(order_doc(status="acknowledged")).encode(),
        {"webhook-id": "b"},
    )

    assert await process_message(world.hub, first.message_id) is Processed.PROCESSED
    assert await process_message(world.hub, second.message_id) is Processed.PROCESSED

    [order] = world.db.orders.values()
    assert order.channel_order_id == "CO-1"
    assert order.channel_status == "acknowledged"
    assert order.status is OrderStatus.AWAITING_ACCEPTANCE
    assert [line.sku for line in order.lines] == ["SKU-1", "SKU-2"]
    assert order.lines[0].unit_price is not None
    assert order.lines[0].unit_price.gross.amount == 19900
    message = world.db.inbox[first.message_id]
    assert message.state is InboxState.PROCESSED
    assert message.processed_at == world.clock.now()
    assert message.attempts == 1
    assert world.feed_types() == ["order.received", "order.updated"]


async def test_a_processed_message_is_not_applied_twice() -> None:
    world = make_world("topi")
    stored = await store(world, json.dumps(order_doc()).encode())
    await process_message(world.hub, stored.message_id)
    commits = world.db.commits

    assert await process_message(world.hub, stored.message_id) is Processed.ENDED
    assert world.db.commits == commits
    assert world.db.inbox[stored.message_id].attempts == 1


async def test_a_message_of_an_account_no_longer_configured_fails_with_why() -> None:
    world = make_world("topi")
    first = await store(world, json.dumps(order_doc()).encode(), {"webhook-id": "a"})
    world.db.inbox[first.message_id].account = "gone"  # removed from the configuration

    assert await process_message(world.hub, first.message_id) is Processed.FAILED
    message = world.db.inbox[first.message_id]
    assert message.state is InboxState.FAILED
    assert message.last_error is not None
    assert "gone" in message.last_error
    assert (message.attempts, message.fence, message.lease_until) == (0, 0, None)
    assert world.db.orders == {}


async def test_the_channel_status_moves_the_order() -> None:
    world = make_world("octopia")
    await world.deliver_webhook(order_doc(status="WaitingAcceptance"))
    await world.deliver_webhook(
        order_doc(
            status="InPreparation",
            released=True,
            counters={"L1": {"accepted": 2}, "L2": {"accepted": 1}},
        )
    )
    assert world.order().status is OrderStatus.READY_TO_SHIP
    assert world.feed_types()[-1] == "order.ready_to_ship"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "malformed"),
        (json.dumps({"id": "CO-1", "lines": []}).encode(), "missing required field `status`"),
        (
            json.dumps(order_doc(counters={"L9": {"shipped": 1}})).encode(),
            "counters for unknown line 'L9'",
        ),
        (json.dumps(order_doc(lines=[])).encode(), "at least one line"),
    ],
)
async def test_a_body_that_cannot_be_mapped_is_kept_as_failed(body: bytes, reason: str) -> None:
    world = make_world("topi")
    stored = await store(world, body)

    assert await process_message(world.hub, stored.message_id) is Processed.FAILED

    message = world.db.inbox[stored.message_id]
    assert message.state is InboxState.FAILED
    assert message.last_error is not None
    assert reason in message.last_error
    assert message.attempts == 1
    assert world.db.orders == {}
    assert [m.id for m in await failed_messages(world.hub)] == [stored.message_id]


async def test_retry_message_queues_a_failed_message_again() -> None:
    world = make_world("topi")
    stored = await store(world, b"{not json")
    await process_message(world.hub, stored.message_id)
    world.queue.messages.clear()

    retried = await retry_message(world.hub, stored.message_id)

    assert retried.state is InboxState.RECEIVED
    assert world.db.inbox[stored.message_id].state is InboxState.RECEIVED
    assert world.queue.messages == [stored.message_id]
    assert await process_message(world.hub, stored.message_id) is Processed.FAILED
    assert world.db.inbox[stored.message_id].attempts == 1  # counted again from the retry


async def test_only_failed_messages_are_retried() -> None:
    world = make_world("topi")
    stored = await store(world, json.dumps(order_doc()).encode())
    with pytest.raises(InvalidTransition) as caught:
        await retry_message(world.hub, stored.message_id)
    assert caught.value.rule == "retry-not-failed"


async def test_a_transient_error_backs_off_and_keeps_the_message_received() -> None:
    world = make_world("topi")
    world.account().fail_next_intake(TransientChannelError("timed out", retry_after=30))
    stored = await store(world, json.dumps(order_doc()).encode())

    assert await process_message(world.hub, stored.message_id) is Processed.RETRY

    message = world.db.inbox[stored.message_id]
    assert message.state is InboxState.RECEIVED
    assert message.last_error == "transient: timed out"
    assert message.next_attempt_at == world.clock.now() + timedelta(seconds=30)
    assert world.queue.message_delays[-1] == (stored.message_id, 30)
    assert world.db.orders == {}
    assert await process_message(world.hub, stored.message_id) is Processed.NOT_DUE
    world.clock.advance(30)
    assert await process_message(world.hub, stored.message_id) is Processed.PROCESSED
    assert len(world.db.orders) == 1


async def test_transient_errors_end_failed_after_the_cap_listed_and_retriable() -> None:
    world = make_world("topi", retry=RetryPolicy(max_attempts=3))
    world.account().fail_next_intake(TransientChannelError("timed out"), times=3)
    stored = await store(world, json.dumps(order_doc()).encode())

    outcomes = []
    for _ in range(3):
        outcomes.append(await process_message(world.hub, stored.message_id))
        world.clock.advance(10_000)
    assert outcomes == [Processed.RETRY, Processed.RETRY, Processed.FAILED]
    message = world.db.inbox[stored.message_id]
    assert message.state is InboxState.FAILED
    assert message.last_error == "transient errors exhausted: timed out"
    assert [m.id for m in await failed_messages(world.hub)] == [stored.message_id]
    await retry_message(world.hub, stored.message_id)
    assert await process_message(world.hub, stored.message_id) is Processed.PROCESSED


class WorkerDied(BaseException):
    """A worker killed while it maps the message (OOM, time limit): nothing is recorded."""


async def test_a_message_that_kills_its_worker_uses_up_its_attempts_and_ends_failed() -> None:
    """The claim, with its attempt, commits before the message is mapped: a message that
    kills every worker is claimed at most ``max_attempts`` times, then failed and listed."""
    policy = RetryPolicy(max_attempts=3)
    world = make_world("topi", retry=policy)
    world.account().fail_next_intake(WorkerDied(), times=5)
    stored = await store(world, json.dumps(order_doc()).encode())

    for attempt in range(1, 4):
        with pytest.raises(WorkerDied):
            await process_message(world.hub, stored.message_id)
        assert world.db.inbox[stored.message_id].attempts == attempt
        world.clock.advance(policy.lease_seconds + 1)
    assert await process_message(world.hub, stored.message_id) is Processed.FAILED
    message = world.db.inbox[stored.message_id]
    assert (message.state, message.attempts) == (InboxState.FAILED, 3)
    assert message.last_error == (
        "transient errors exhausted: no outcome was recorded (the worker died or timed out)"
    )
    assert [m.id for m in await failed_messages(world.hub)] == [stored.message_id]
    assert world.db.orders == {}


async def test_sweep_requeues_a_message_a_crash_left_unprocessed() -> None:
    world = make_world("topi")
    stored = await store(world, json.dumps(order_doc()).encode())
    world.queue.messages.clear()  # the worker never got it

    assert (await sweep(world.hub)).messages == 0  # too fresh: its queue message may be coming
    world.clock.advance(121)
    result = await sweep(world.hub)

    assert result.messages == 1
    assert world.queue.messages == [stored.message_id]


async def test_a_new_order_can_be_acknowledged_on_receipt() -> None:
    world = make_world("topi", acknowledge_on_receipt=True)
    await world.deliver_webhook(order_doc())
    await world.deliver_webhook(order_doc(status="acknowledged"))

    [command] = world.commands()  # only for the new order
    assert command.kind is CommandKind.ACKNOWLEDGE
    assert command.order_id == world.order().id
    assert world.queue.commands == [(command.id, 0)]


async def test_orders_of_two_accounts_stay_apart() -> None:
    world = make_world("topi", accounts=[("other", {"profile": "spresso"})])
    await world.deliver_webhook(order_doc())
    await store_message(
        world.hub,
        channel="testchannel",
        account="other",
        body=json.dumps(order_doc()).encode(),
        headers={},
    )
    await process_message(world.hub, world.queue.messages[-1])
    orders = sorted(world.db.orders.values(), key=lambda o: o.account)
    assert [(o.account, o.status) for o in orders] == [
        ("main", OrderStatus.AWAITING_ACCEPTANCE),
        ("other", OrderStatus.READY_TO_SHIP),
    ]


async def test_a_concurrent_writer_makes_intake_try_again() -> None:
    world = make_world("topi")
    await world.receive(order_doc())
    world.uow.races = 1

    await world.deliver_webhook(order_doc(status="acknowledged"))

    assert world.order().channel_status == "acknowledged"
    assert world.feed_types().count("order.updated") == 1


async def test_a_conflict_that_persists_leaves_the_message_for_a_later_attempt() -> None:
    world = make_world("topi")
    await world.receive(order_doc())
    stored = await store(world, json.dumps(order_doc(status="acknowledged")).encode())
    world.uow.races = CONFLICT_RETRIES

    assert await process_message(world.hub, stored.message_id) is Processed.RETRY

    message = world.db.inbox[stored.message_id]
    assert message.state is InboxState.RECEIVED  # not failed: nothing was wrong with it
    assert message.last_error is not None
    assert message.last_error.startswith("transient: ConcurrencyConflict")
    world.clock.advance(10_000)
    assert await process_message(world.hub, stored.message_id) is Processed.PROCESSED


def test_a_stored_error_is_clipped_and_storable() -> None:
    """A channel's error body may carry a NUL or a lone surrogate, which PostgreSQL cannot
    store in text: the outcome would fail to be recorded and the call be made again."""
    assert clip("refused: \x00 bad \ud800 body") == "refused: \ufffd bad \ufffd body"
    assert clip("x" * (MAX_ERROR_LENGTH + 10)) == "x" * MAX_ERROR_LENGTH
    assert clip("plain") == "plain"
