"""Every command that waits for an operator because of a failed one is held, naming the
failed one, and listed (``held_commands``), however it came to wait: behind the failed
command itself, behind one held behind it, or left waiting by a claim that raced the
failure. Issue 11's leftover: ``/ops/held-commands`` did not list the commands queued
behind a held one, and nothing looked at them again until the operator acted."""

from __future__ import annotations

import pytest

from orderhub.application.hub import RetryPolicy
from orderhub.application.services.dispatch import Dispatched, dispatch_command
from orderhub.application.services.operations import abandon_command, held_commands, sweep
from orderhub.application.services.seller_commands import (
    accept_order,
    cancel_order,
    reject_order,
)
from orderhub.channels.spi import CommandKind, PermanentChannelError, TransientChannelError
from orderhub.domain.values import LineQuantity, Reason

from .support import World, line_ids, make_world, order_doc

POLICY = RetryPolicy(base_seconds=2.0, max_seconds=60.0, max_attempts=3, lease_seconds=120.0)


async def _accept_reject_cancel(world: World) -> tuple[str, str, str]:
    """Octopia: L1 accepted, L2 rejected, then one of L1 cancelled, in that order, none sent."""
    order = await world.receive(order_doc())
    lines = line_ids(order)

    def some(line: str, quantity: int = 1) -> list[LineQuantity]:
        return [LineQuantity(line_id=lines[line], quantity=quantity)]

    hub, oid = world.hub, order.id
    accept = await accept_order(hub, order_id=oid, lines=some("L1", 2))
    reject = await reject_order(hub, order_id=oid, reason=Reason.OUT_OF_STOCK, lines=some("L2"))
    cancel = await cancel_order(hub, order_id=oid, reason=Reason.SELLER_REFUSAL, lines=some("L1"))
    return accept.command_id, reject.command_id, cancel.command_id


def _cancel_need_not_wait_for_accept(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """A channel whose cancellation need not wait for the acceptance, but must wait for
    a rejection: what the acceptance's failure holds, the cancellation waits for."""

    def independent(earlier: CommandKind, later: CommandKind) -> bool:
        return (earlier, later) == (CommandKind.ACCEPT, CommandKind.CANCEL)

    monkeypatch.setattr(world.account(), "independent", independent)


async def _failed_accept(
    monkeypatch: pytest.MonkeyPatch | None = None,
) -> tuple[World, str, str, str]:
    """The three commands, the acceptance failed for good (with ``monkeypatch``: on a
    channel whose cancellation need not wait for the acceptance)."""
    world = make_world("octopia", retry=POLICY)
    if monkeypatch is not None:
        _cancel_need_not_wait_for_accept(world, monkeypatch)
    accept, reject, cancel = await _accept_reject_cancel(world)
    world.account().fail_next(PermanentChannelError("the order was cancelled"))
    assert await dispatch_command(world.hub, accept) is Dispatched.FAILED
    return world, accept, reject, cancel


async def test_a_failure_holds_what_waits_behind_its_held_followers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world, accept, reject, cancel = await _failed_accept(monkeypatch)

    assert {c.id: c.held_by for c in await held_commands(world.hub)} == {
        reject: accept,
        cancel: accept,
    }
    assert await dispatch_command(world.hub, cancel) is Dispatched.HELD
    await abandon_command(world.hub, accept)  # releases both; the rejection goes first
    assert await held_commands(world.hub) == []
    assert await dispatch_command(world.hub, cancel) is Dispatched.WAITING
    assert await dispatch_command(world.hub, reject) is Dispatched.SUCCEEDED
    assert await dispatch_command(world.hub, cancel) is Dispatched.SUCCEEDED
    assert [c.kind for c in world.account().calls] == ["accept", "reject", "cancel"]


async def test_a_claim_behind_a_held_command_is_held_by_the_failed_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world, accept, reject, cancel = await _failed_accept(monkeypatch)
    world.db.commands[cancel].held_by = None  # as a claim that raced the failure leaves it

    assert await dispatch_command(world.hub, cancel) is Dispatched.HELD

    assert world.db.commands[cancel].held_by == accept
    assert {c.id for c in await held_commands(world.hub)} == {reject, cancel}


async def test_a_command_left_waiting_behind_a_held_one_is_swept_and_held() -> None:
    """make chaos seed 41 (Redis): a command the WMS sent while an earlier one was failing
    was left pending with no ``held_by`` behind the failed one's held follower;
    the sweeper passed it over (an earlier pending command goes first), so it was listed
    nowhere until an operator acted."""
    world, accept, reject, cancel = await _failed_accept()
    world.db.commands[cancel].held_by = None  # its claim raced the failure: waiting
    world.queue.commands.clear()
    assert [c.id for c in await held_commands(world.hub)] == [reject]

    world.clock.advance(3600)
    assert (await sweep(world.hub, requeue_after_seconds=120)).commands == 1
    assert [command_id for command_id, _ in world.queue.commands] == [cancel]
    assert await dispatch_command(world.hub, cancel) is Dispatched.HELD

    assert {c.id: c.held_by for c in await held_commands(world.hub)} == {
        reject: accept,
        cancel: accept,
    }
    world.queue.commands.clear()
    world.clock.advance(3600)
    assert (await sweep(world.hub, requeue_after_seconds=120)).commands == 0  # held: left be


async def test_a_command_behind_live_work_and_a_failure_stays_held(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The acceptance backs off (live work, earliest), the rejection failed: the
    cancellation waits for both, and is listed as held by the rejection meanwhile."""
    world = make_world("octopia", retry=POLICY)

    def independent(earlier: CommandKind, later: CommandKind) -> bool:
        return (earlier, later) == (CommandKind.ACCEPT, CommandKind.REJECT)

    monkeypatch.setattr(world.account(), "independent", independent)
    accept, reject, cancel = await _accept_reject_cancel(world)
    world.account().fail_next(TransientChannelError("timeout"))
    assert await dispatch_command(world.hub, accept) is Dispatched.RETRY
    world.account().fail_next(PermanentChannelError("refused"))
    assert await dispatch_command(world.hub, reject) is Dispatched.FAILED

    assert await dispatch_command(world.hub, cancel) is Dispatched.HELD

    assert {c.id: c.held_by for c in await held_commands(world.hub)} == {cancel: reject}


async def test_a_hold_written_after_the_operator_released_it_does_not_stick(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A claim read the acceptance failed, the operator abandoned it, then the claim's
    hold was written: abandoning queues every later command again, and the sweeper
    brings back one held by a command failed no more; neither stays held."""
    world, accept, reject, cancel = await _failed_accept(monkeypatch)
    world.queue.commands.clear()

    await abandon_command(world.hub, accept)
    world.db.commands[reject].held_by = accept  # the racing claim's hold, written last
    world.db.commands[cancel].held_by = accept

    assert sorted(command_id for command_id, _ in world.queue.commands) == sorted([reject, cancel])
    world.queue.commands.clear()
    world.clock.advance(3600)
    assert (await sweep(world.hub, requeue_after_seconds=120)).commands == 1  # reject first
    assert await dispatch_command(world.hub, reject) is Dispatched.SUCCEEDED
    assert await dispatch_command(world.hub, cancel) is Dispatched.SUCCEEDED
    assert await held_commands(world.hub) == []
