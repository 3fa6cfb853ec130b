"""Dispatching queued channel commands: at least once, leased, retried with backoff."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest

from orderhub.application.hub import RetryPolicy
from orderhub.application.ports import ChannelCommand, CommandState
from orderhub.application.services.dispatch import Dispatched, dispatch_command
from orderhub.application.services.intake import process_message
from orderhub.application.services.operations import failed_commands, retry_command, sweep
from orderhub.application.services.seller_commands import accept_order, record_shipment
from orderhub.channels.spi import (
    ChannelConfigurationError,
    CommandOutcome,
    PermanentChannelError,
    TransientChannelError,
)
from orderhub.domain.errors import InvalidTransition
from orderhub.domain.model import Order
from orderhub.domain.values import LineQuantity

from .support import World, line_ids, make_world, order_doc

POLICY = RetryPolicy(base_seconds=2.0, max_seconds=600.0, max_attempts=3, lease_seconds=120.0)


async def accepted(world: World) -> str:
    """An order accepted by the warehouse; returns the queued command's id."""
    order = await world.receive(order_doc())
    receipt = await accept_order(world.hub, order_id=order.id)
    world.queue.commands.clear()
    return receipt.command_id


async def test_success_records_the_outcome_and_tells_the_feed() -> None:
    world = make_world("topi", retry=POLICY)
    command_id = await accepted(world)

    assert await dispatch_command(world.hub, command_id) is Dispatched.SUCCEEDED

    command = world.db.commands[command_id]
    assert command.state is CommandState.SUCCEEDED
    assert command.attempts == 1
    assert command.lease_until is None
    assert command.finished_at == world.clock.now()
    assert command.result == {"recorded": 1}
    [call] = world.account().calls
    assert call.command_id == command_id
    assert call.kind == "accept"
    assert call.order == "CO-1"
    assert {i["channel_line_id"] for i in call.payload["lines"]} == {"L1", "L2"}
    entry = world.db.feed[-1]
    assert entry.type == "command.succeeded"
    assert entry.order_id == command.order_id
    assert entry.channel == "testchannel"
    assert entry.data["command_id"] == command_id
    assert entry.data["state"] == "succeeded"
    assert world.queue.commands == []


async def test_a_finished_command_is_not_sent_again() -> None:
    world = make_world("topi", retry=POLICY)
    command_id = await accepted(world)
    await dispatch_command(world.hub, command_id)
    assert await dispatch_command(world.hub, command_id) is Dispatched.ENDED
    assert len(world.account().calls) == 1
    assert await dispatch_command(world.hub, "unknown") is Dispatched.MISSING


async def test_a_command_of_an_account_no_longer_configured_fails_with_why() -> None:
    world = make_world("topi", retry=POLICY)
    command_id = await accepted(world)
    world.db.commands[command_id].account = "gone"  # removed from the configuration

    assert await dispatch_command(world.hub, command_id) is Dispatched.FAILED
    command = world.db.commands[command_id]
    assert command.state is CommandState.FAILED
    assert command.last_error is not None
    assert "gone" in command.last_error
    assert (command.attempts, command.fence, command.lease_until) == (0, 0, None)
    assert world.account().calls == []
    assert world.db.feed[-1].type == "command.failed"


async def test_a_transient_error_backs_off_and_queues_again() -> None:
    world = make_world("topi", retry=POLICY)
    command_id = await accepted(world)
    world.account().fail_next(TransientChannelError("503 from channel", status=503))

    assert await dispatch_command(world.hub, command_id) is Dispatched.RETRY

    command = world.db.commands[command_id]
    assert command.state is CommandState.PENDING
    assert command.attempts == 1
    assert command.last_error == "503 from channel"
    assert command.lease_until is None
    [(queued, delay)] = world.queue.commands
    assert queued == command_id
    assert 1.0 <= delay <= 2.0  # first attempt: jitter in [base/2, base]
    assert command.next_attempt_at == world.clock.now() + timedelta(seconds=delay)
    assert "command.failed" not in world.feed_types()

    # too early: the delayed message arrived ahead of time, nothing is sent
    assert await dispatch_command(world.hub, command_id) is Dispatched.NOT_DUE
    assert len(world.account().calls) == 1

    world.clock.advance(delay)
    assert await dispatch_command(world.hub, command_id) is Dispatched.SUCCEEDED
    assert world.db.commands[command_id].attempts == 2
    assert [c.command_id for c in world.account().calls] == [command_id, command_id]


async def test_retry_after_is_honoured() -> None:
    world = make_world("topi", retry=POLICY)
    command_id = await accepted(world)
    world.account().fail_next(TransientChannelError("429", status=429, retry_after=45.0))

    await dispatch_command(world.hub, command_id)

    [(_, delay)] = world.queue.commands
    assert delay == 45.0
    assert world.db.commands[command_id].next_attempt_at == world.clock.now() + timedelta(
        seconds=45
    )


async def test_backoff_grows_with_each_attempt() -> None:
    world = make_world("topi", retry=RetryPolicy(base_seconds=2.0, max_attempts=10))
    command_id = await accepted(world)
    world.account().fail_next(TransientChannelError("down"), times=4)
    for _ in range(4):
        world.clock.advance(10_000)
        await dispatch_command(world.hub, command_id)
    delays = [delay for _, delay in world.queue.commands]
    ceilings = [2.0, 4.0, 8.0, 16.0]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True)), delays


async def test_after_max_attempts_the_command_fails_on_the_feed() -> None:
    world = make_world("topi", retry=POLICY)
    command_id = await accepted(world)
    world.account().fail_next(TransientChannelError("503"), times=3)

    states = []
    for _ in range(3):
        world.clock.advance(1000)
        states.append(await dispatch_command(world.hub, command_id))

    assert states == [Dispatched.RETRY, Dispatched.RETRY, Dispatched.FAILED]
    command = world.db.commands[command_id]
    assert command.state is CommandState.FAILED
    assert command.attempts == 3
    assert command.last_error == "gave up after 3 attempts: 503"
    assert world.feed_types()[-1] == "command.failed"
    assert world.db.feed[-1].data["error"] == "gave up after 3 attempts: 503"
    assert [c.id for c in await failed_commands(world.hub)] == [command_id]
    assert len(world.queue.commands) == 2  # no re-queue after the last attempt


async def test_a_permanent_error_fails_at_once_with_the_message_kept() -> None:
    world = make_world("topi", retry=POLICY)
    command_id = await accepted(world)
    world.account().fail_next(PermanentChannelError("400: order already confirmed", status=400))

    assert await dispatch_command(world.hub, command_id) is Dispatched.FAILED

    command = world.db.commands[command_id]
    assert command.attempts == 1
    assert command.last_error == "400: order already confirmed"
    assert command.result == {"status": 400, "decision_undone": True}
    assert world.queue.commands == []
    assert world.feed_types()[-1] == "command.failed"
    assert world.db.feed[-1].data["state"] == "failed"


async def test_a_configuration_error_is_permanent() -> None:
    world = make_world("topi", retry=POLICY)
    command_id = await accepted(world)
    world.account().fail_next(ChannelConfigurationError("401 after refresh", status=401))
    assert await dispatch_command(world.hub, command_id) is Dispatched.FAILED


async def test_an_adapter_bug_is_retried_then_kept() -> None:
    world = make_world("topi", retry=POLICY)
    command_id = await accepted(world)
    world.account().fail_next(KeyError("oops"))

    assert await dispatch_command(world.hub, command_id) is Dispatched.RETRY
    assert world.db.commands[command_id].last_error == "KeyError: 'oops'"


async def test_a_lease_keeps_a_second_worker_off() -> None:
    world = make_world("topi", retry=POLICY)
    command_id = await accepted(world)
    gate = world.account().hold_calls()

    first = asyncio.create_task(dispatch_command(world.hub, command_id))
    await asyncio.wait_for(world.account().wait_for_calls(1), timeout=5)
    leased = world.db.commands[command_id]
    assert leased.lease_until == world.clock.now() + timedelta(seconds=120)

    assert await dispatch_command(world.hub, command_id) is Dispatched.LEASED
    assert len(world.account().calls) == 1  # the second worker did not call

    gate.set()
    assert await first is Dispatched.SUCCEEDED
    assert world.db.commands[command_id].attempts == 1


async def test_sweep_queues_a_command_committed_but_never_queued() -> None:
    world = make_world("topi", retry=POLICY)
    command_id = await accepted(world)  # the enqueue after commit was lost (queue cleared)

    assert (await sweep(world.hub, requeue_after_seconds=30)).commands == 0  # still fresh
    world.clock.advance(31)
    result = await sweep(world.hub, requeue_after_seconds=30)

    assert result.commands == 1
    assert world.queue.commands == [(command_id, 0)]
    assert (await sweep(world.hub, requeue_after_seconds=30)).commands == 0  # queued just now
    assert await dispatch_command(world.hub, command_id) is Dispatched.SUCCEEDED


async def test_sweep_leaves_a_command_waiting_for_its_retry() -> None:
    world = make_world("topi", retry=POLICY)
    command_id = await accepted(world)
    world.account().fail_next(TransientChannelError("down", retry_after=300))
    world.clock.advance(60)
    await dispatch_command(world.hub, command_id)
    world.queue.commands.clear()

    world.clock.advance(60)
    assert (await sweep(world.hub, requeue_after_seconds=30)).commands == 0  # not due
    world.clock.advance(240)  # due now, and its delayed message was queued for then
    assert (await sweep(world.hub, requeue_after_seconds=30)).commands == 0
    world.clock.advance(31)  # due, and that message did not bring it: the sweeper does
    assert (await sweep(world.hub, requeue_after_seconds=30)).commands == 1


async def test_a_worker_killed_mid_call_is_swept_after_its_lease() -> None:
    world = make_world("topi", retry=POLICY)
    command_id = await accepted(world)
    world.clock.advance(60)
    world.account().hold_calls()

    worker = asyncio.create_task(dispatch_command(world.hub, command_id))
    await asyncio.wait_for(world.account().wait_for_calls(1), timeout=5)
    worker.cancel()  # the worker dies with the call in flight
    with pytest.raises(asyncio.CancelledError):
        await worker

    assert world.db.commands[command_id].state is CommandState.PENDING
    assert (await sweep(world.hub)).commands == 0  # the lease still runs
    world.clock.advance(121)
    assert (await sweep(world.hub)).commands == 1

    world.account().hold_calls().set()
    assert await dispatch_command(world.hub, command_id) is Dispatched.SUCCEEDED
    calls = world.account().calls
    assert [c.command_id for c in calls] == [command_id, command_id]  # same idempotency key
    assert world.db.commands[command_id].attempts == 2


async def test_retry_command_resets_a_failed_one() -> None:
    world = make_world("topi", retry=POLICY)
    command_id = await accepted(world)
    world.account().fail_next(PermanentChannelError("400"))
    await dispatch_command(world.hub, command_id)

    assert world.order().status.value == "awaiting_acceptance"  # the refused accept undone
    retried = await retry_command(world.hub, command_id)

    assert retried.state is CommandState.PENDING
    stored = world.db.commands[command_id]
    assert (stored.state, stored.attempts, stored.next_attempt_at, stored.finished_at) == (
        CommandState.PENDING,
        0,
        world.clock.now(),
        None,
    )
    assert stored.fence == 2  # a new claim number: outcomes of claims before it stay stale
    assert world.order().status.value == "ready_to_ship"  # the decision is made again
    assert world.order().attention == []
    assert world.queue.commands == [(command_id, 0)]
    assert await dispatch_command(world.hub, command_id) is Dispatched.SUCCEEDED


async def test_only_failed_commands_are_retried() -> None:
    world = make_world("topi", retry=POLICY)
    command_id = await accepted(world)
    with pytest.raises(InvalidTransition) as caught:
        await retry_command(world.hub, command_id)
    assert caught.value.rule == "retry-not-failed"


async def test_a_shipment_goes_out_with_the_channels_line_ids() -> None:
    world = make_world("topi", retry=POLICY)
    order = await world.receive(order_doc())
    accept = await accept_order(world.hub, order_id=order.id)
    receipt = await record_shipment(
        world.hub,
        order_id=order.id,
        items=[LineQuantity(line_id=line_ids(order)["L2"], quantity=1)],
        tracking_number="T1",
    )
    assert await dispatch_command(world.hub, receipt.command_id) is Dispatched.WAITING
    assert world.account().calls == []  # the accept goes first
    assert await dispatch_command(world.hub, accept.command_id) is Dispatched.SUCCEEDED
    assert world.queue.commands[-1] == (receipt.command_id, 0)  # released by the accept
    assert await dispatch_command(world.hub, receipt.command_id) is Dispatched.SUCCEEDED
    [_, call] = world.account().calls
    assert call.kind == "ship"
    assert call.payload["items"][0]["channel_line_id"] == "L2"
    assert call.payload["tracking_number"] == "T1"


async def test_the_channels_answer_updates_the_order_it_sends_no_webhook_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """topi sends no webhook for confirmed: the state the answer shows is merged."""
    world = make_world("topi", retry=POLICY)
    command_id = await accepted(world)
    account = world.account()
    original = account.execute

    async def execute_and_report(command: ChannelCommand, order: Order) -> CommandOutcome:
        outcome = await original(command, order)
        doc = order_doc(
            status="confirmed",
            counters={"L1": {"accepted": 2}, "L2": {"accepted": 1}},
            released=True,
        )
        [snapshot] = await account.snapshots(json.dumps(doc).encode(), {})
        return CommandOutcome(data=outcome.data, snapshot=snapshot)

    monkeypatch.setattr(account, "execute", execute_and_report)
    assert await dispatch_command(world.hub, command_id) is Dispatched.SUCCEEDED
    assert world.feed_types()[-1] == "command.succeeded"  # recorded apart from the answer
    [message_id] = world.queue.messages  # the answer goes through the inbox
    assert world.db.inbox[message_id].source == "command"
    await process_message(world.hub, message_id)
    order = world.order()
    assert order.channel_status == "confirmed"
    assert order.status.value == "ready_to_ship"
    assert world.feed_types()[-1] == "order.updated"


async def test_a_late_answer_does_not_move_the_order_back(monkeypatch: pytest.MonkeyPatch) -> None:
    world = make_world("topi", retry=POLICY)
    command_id = await accepted(world)
    account = world.account()
    stale_doc = order_doc(status="created")
    [stale] = await account.snapshots(json.dumps(stale_doc).encode(), {})

    async def execute_stale(command: ChannelCommand, order: Order) -> CommandOutcome:
        return CommandOutcome(data={}, snapshot=stale)

    monkeypatch.setattr(account, "execute", execute_stale)
    await dispatch_command(world.hub, command_id)
    [message_id] = world.queue.messages
    await process_message(world.hub, message_id)
    order = world.order()
    assert order.status.value == "ready_to_ship"
    assert all(line.accepted == line.quantity for line in order.leaf_lines)
    assert "order.updated" not in world.feed_types()
