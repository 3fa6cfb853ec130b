"""Carry a queued command out at its channel: at most ``max_attempts`` calls, in order,
each outcome written once.

The steps, and what a crash between them leaves:

1. **Claim** (one transaction, the command row locked): the command must be pending, due,
   not leased and not over its attempt cap (over it: it fails now, with its last error);
   every earlier command of its order must have succeeded or been abandoned (unless the
   adapter declares the two kinds independent); a failed one holds it. Then ``attempts``
   and ``fence`` go up and a lease is taken. One statement when nothing earlier is
   unfinished (:meth:`CommandRepository.claim`); otherwise the checks one by one.
   *Crash after the claim*: the lease runs out, the sweeper queues the command again,
   and the next claim counts the lost attempt.
2. **Call** the channel, outside any transaction. *Crash during the call*: as above; the
   adapter passes ``command.id`` as the channel's idempotency key where the channel has
   one, so the repeated call is harmless.
3. **Record** (one transaction): the outcome is written only if ``fence`` is still the
   claim's (a worker whose lease ran out and was taken over writes nothing: its outcome is
   stale, logged and counted). Recording touches only the command, its event and, for a
   failure, the decision it carried; the channel's answer (a snapshot) is stored in the
   inbox in the same transaction and applied like any channel message. *Crash after the
   call, before the record*: the call happened but the hub does not know; the next claim
   calls again (idempotently), and the attempt counts against the cap.
4. **Release**: the order's later commands are queued (after the commit; a lost enqueue
   is found by the sweeper).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from orderhub.application.hub import Hub
from orderhub.application.ports import ChannelCommand, CommandKind, CommandState, UnitOfWork
from orderhub.application.services import invoices
from orderhub.application.services.common import clip, configured_account, with_conflict_retry
from orderhub.application.services.intake import command_answer
from orderhub.channels.registry import ChannelNotFound
from orderhub.channels.spi import (
    ChannelAccount,
    ChannelConfigurationError,
    ChannelError,
    CommandOutcome,
    CommandView,
    TransientChannelError,
)
from orderhub.domain.events import EventType
from orderhub.domain.model import Order


class Dispatched(StrEnum):
    """What one dispatch job did."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RETRY = "retry"  # a transient error: another attempt is scheduled
    WAITING = "waiting"  # an earlier command of the order is still on its way
    HELD = "held"  # an earlier command of the order failed: an operator decides
    NOT_DUE = "not_due"
    LEASED = "leased"  # another worker holds it
    STALE = "stale"  # the lease ran out and another claim came: the outcome was dropped
    ENDED = "ended"  # it had ended already
    MISSING = "missing"


@dataclass(frozen=True, kw_only=True, slots=True)
class Claim:
    command: ChannelCommand
    order: Order
    account: ChannelAccount


async def dispatch_command(
    hub: Hub, command_id: str, *, seen: Callable[[ChannelCommand], None] | None = None
) -> Dispatched:
    """Claim, call, record (see the module's docstring). ``seen`` is shown the command as
    the claim reads it (the caller's logs and metrics name it without a second read)."""
    claimed = await with_conflict_retry(lambda: _claim(hub, command_id, seen))
    if not isinstance(claimed, Claim):
        return claimed
    command = claimed.command
    view = CommandView.of(command)
    if command.kind is CommandKind.INVOICE:  # the adapter gets the document's bytes
        try:
            view = await invoices.with_document(hub, view)
        except invoices.DocumentUnreadable as exc:
            return await _give_up(hub, command, str(exc), status=None)
    try:
        outcome = await claimed.account.execute(view, claimed.order)
    except TransientChannelError as exc:
        return await _retry(hub, command, exc.message, exc.retry_after, status=exc.status)
    except ChannelConfigurationError as exc:  # our credentials, not the channel's answer
        return await _give_up(hub, command, exc.message, status=exc.status)
    except ChannelError as exc:  # the channel refused: a decision it carried is undone
        return await _give_up(hub, command, exc.message, status=exc.status, refused=True)
    except Exception as exc:  # an adapter bug: retried (within the cap), its reason kept
        return await _retry(hub, command, f"{type(exc).__name__}: {exc}", None, status=None)
    return await _succeed(hub, command, outcome)


async def _claim(
    hub: Hub, command_id: str, seen: Callable[[ChannelCommand], None] | None = None
) -> Claim | Dispatched:
    now = hub.clock.now()
    lease_until = now + timedelta(seconds=hub.retry.lease_seconds)
    async with hub.uow() as uow:  # the usual case: one statement, and the order read
        command = await uow.commands.claim(
            command_id, now=now, lease_until=lease_until, max_attempts=hub.retry.max_attempts
        )
        account = (
            None if command is None else configured_account(hub, command.channel, command.account)
        )
        if command is not None and account is not None:
            if seen is not None:
                seen(command)
            order = await uow.orders.get(command.order_id)
            await uow.commit()
            return await _with_order(hub, command, order, account)
    return await _claim_step_by_step(hub, command_id, now, lease_until, seen)


async def _with_order(
    hub: Hub, command: ChannelCommand, order: Order | None, account: ChannelAccount
) -> Claim | Dispatched:
    if order is None:  # orders are never deleted; fail loudly if one is
        return await _give_up(hub, command, f"order {command.order_id} is gone", status=None)
    return Claim(command=command, order=order, account=account)


async def _claim_step_by_step(
    hub: Hub,
    command_id: str,
    now: datetime,
    lease_until: datetime,
    seen: Callable[[ChannelCommand], None] | None,
) -> Claim | Dispatched:
    """Why the command cannot be claimed, or its claim: the checks one by one, with what
    one statement cannot weigh (earlier commands its channel declares independent, and
    the failed one that holds it)."""
    async with hub.uow() as uow:
        command = await uow.commands.get(command_id, for_update=True)
        if command is None:
            return Dispatched.MISSING
        if seen is not None:
            seen(command)
        if command.state is not CommandState.PENDING:
            return Dispatched.ENDED
        if command.next_attempt_at is not None and command.next_attempt_at > now:
            return Dispatched.NOT_DUE  # its delayed message or the sweeper brings it back
        if command.lease_until is not None and command.lease_until > now:
            return Dispatched.LEASED
        try:
            account = hub.channels.account(command.channel, command.account)
        except ChannelNotFound as exc:
            return await _end_failed(uow, hub, None, command, exc.detail, fence=command.fence)
        if command.attempts >= hub.retry.max_attempts:
            last = command.last_error or "no outcome was recorded (the worker died or timed out)"
            error = f"gave up after {command.attempts} attempts: {last}"
            return await _end_failed(uow, hub, account, command, error, fence=command.fence)
        blocked, held_by = await _blocked_by(uow, account, command)
        if blocked is not None:
            if held_by != command.held_by:
                await uow.commands.set_held(command, held_by)
                await uow.commit()
            return Dispatched.HELD if held_by else Dispatched.WAITING
        command.attempts += 1
        command.fence += 1
        command.held_by = None
        command.lease_until = lease_until
        await uow.commands.save(command)
        order = await uow.orders.get(command.order_id)
        await uow.commit()
    return await _with_order(hub, command, order, account)


async def _blocked_by(
    uow: UnitOfWork, account: ChannelAccount, command: ChannelCommand
) -> tuple[ChannelCommand | None, str | None]:
    """What this command waits for: the earliest command of the order that must end
    before it may go (None: it may go), and the failed command it is held by (None: it
    waits for live work, which releases it when it ends).

    It is held when any command it waits for failed, or is held by one that is still
    failed: every command behind a failure is listed, naming it, even behind live work.
    A ``held_by`` naming a command that is failed no more (retried or abandoned while
    this was claimed) holds nothing."""
    commands = await uow.commands.for_order(command.order_id)
    failed = {c.id for c in commands if c.state is CommandState.FAILED}
    blocker: ChannelCommand | None = None
    for earlier in commands:
        if earlier.seq >= command.seq:
            break
        if earlier.state.is_final or account.independent(earlier.kind, command.kind):
            continue
        blocker = blocker or earlier
        root = earlier.id if earlier.state is CommandState.FAILED else earlier.held_by
        if root in failed:
            return blocker, root
    return blocker, None


async def _succeed(hub: Hub, command: ChannelCommand, outcome: CommandOutcome) -> Dispatched:
    async def record() -> tuple[Dispatched, list[str], str | None]:
        async with hub.uow() as uow:
            stored = dataclasses.replace(
                command,
                state=CommandState.SUCCEEDED,
                result=dict(outcome.data),
                last_error=None,
                lease_until=None,
                finished_at=hub.clock.now(),
            )
            # written first, only under the claim: the row stays locked to the commit, and
            # a worker whose lease was taken over stops here
            if not await uow.commands.record_outcome(stored, fence=command.fence):
                return Dispatched.STALE, [], None
            message_id = None
            if outcome.channel_ids:  # the channel's ids for what the command created
                created = await uow.orders.get(stored.order_id)
                if created is not None:
                    created.link_channel_ids(
                        kind=stored.kind.value, payload=stored.payload, ids=outcome.channel_ids
                    )
            if outcome.snapshot is not None:
                message_id = await command_answer(uow, hub, stored, outcome.snapshot)
            order = await uow.orders.get(stored.order_id)
            if order is not None and stored.kind is CommandKind.INVOICE:
                invoices.take_outcome(hub, order, stored, outcome, hub.clock.now())
            uow.record(EventType.COMMAND_SUCCEEDED.value, order=order, data=event_data(stored))
            later = await _release(uow, stored)
            await uow.commit()
            return Dispatched.SUCCEEDED, later, message_id

    result, later, message_id = await with_conflict_retry(record)
    if message_id is not None:
        hub.queue.enqueue_inbox(message_id)
    for command_id in later:
        hub.queue.enqueue_command(command_id)
    return result


async def _release(uow: UnitOfWork, ended: ChannelCommand) -> list[str]:
    """The order's later pending commands, no longer held by ``ended``: to be queued."""
    later = []
    for other in await uow.commands.for_order(ended.order_id):
        if other.seq > ended.seq and other.state is CommandState.PENDING:
            if other.held_by == ended.id:
                await uow.commands.set_held(other, None)
            later.append(other.id)
    return later


async def _retry(
    hub: Hub, command: ChannelCommand, error: str, retry_after: float | None, *, status: int | None
) -> Dispatched:
    if command.attempts >= hub.retry.max_attempts:
        return await _give_up(
            hub, command, f"gave up after {command.attempts} attempts: {error}", status=status
        )
    delay = hub.retry.delay(command.attempts, retry_after=retry_after, rng=hub.rng)

    async def record() -> Dispatched:
        async with hub.uow() as uow:
            stored = await uow.commands.get(command.id, for_update=True)
            if stored is None or stored.fence != command.fence:
                return Dispatched.STALE
            due = hub.clock.now() + timedelta(seconds=delay)
            stored.last_error = clip(error)
            stored.next_attempt_at = due
            stored.queued_at = due  # the delayed message is the queue's until then
            stored.lease_until = None
            if not await uow.commands.save(stored, fence=command.fence):
                return Dispatched.STALE
            await uow.commit()
            return Dispatched.RETRY

    result = await with_conflict_retry(record)
    if result is Dispatched.RETRY:
        hub.queue.enqueue_command(command.id, delay_seconds=delay)
    return result


async def _give_up(
    hub: Hub, command: ChannelCommand, error: str, *, status: int | None, refused: bool = False
) -> Dispatched:
    account = hub.channels.account(command.channel, command.account)

    async def record() -> Dispatched:
        async with hub.uow() as uow:
            stored = await uow.commands.get(command.id, for_update=True)
            if stored is None or stored.fence != command.fence:
                return Dispatched.STALE
            return await _end_failed(
                uow,
                hub,
                account,
                stored,
                error,
                fence=command.fence,
                status=status,
                refused=refused,
            )

    return await with_conflict_retry(record)


async def _end_failed(
    uow: UnitOfWork,
    hub: Hub,
    account: ChannelAccount | None,
    command: ChannelCommand,
    error: str,
    *,
    fence: int,
    status: int | None = None,
    refused: bool = False,
) -> Dispatched:
    """Fail the command for good, in ``uow``, with one ``command.failed`` event and an
    attention reason on the order; hold the order's later commands that wait for it or for
    one held behind it (those its channel does not declare independent of them). Only a
    refusal by the channel (``refused``) undoes the decision the command carried: a call
    that gave up, or credentials we got wrong, say nothing of what the channel thinks of
    it. Commits."""
    now = hub.clock.now()
    command.state = CommandState.FAILED
    command.last_error = clip(error)
    command.lease_until = None
    command.finished_at = now
    if status is not None:
        command.result = {**command.result, "status": status}
    order = await uow.orders.get(command.order_id)
    if order is not None:
        undone = order.decision_refused(
            kind=command.kind.value,
            payload=command.payload,
            ref=command.id,
            error=error,
            now=now,
            undo=refused,
        )
        invoice_id = str(command.payload.get("invoice_id", ""))
        if refused and command.kind is CommandKind.INVOICE and order.has_invoice(invoice_id):
            # the channel refused the upload itself: the invoice is rejected with its
            # message (its number free for a corrected one), never left pending
            undone |= order.invoice_verdict(invoice_id, accepted=False, reason=error, now=now)
        command.result = {**command.result, "decision_undone": undone}
    if not await uow.commands.save(command, fence=fence):
        return Dispatched.STALE
    commands = await uow.commands.for_order(command.order_id)
    failed = {c.id for c in commands if c.state is CommandState.FAILED and c.id != command.id}
    behind = [command]  # the failed command and those held behind it, in order
    for other in commands:
        if other.seq <= command.seq or other.state is not CommandState.PENDING:
            continue
        if account is not None and all(account.independent(e.kind, other.kind) for e in behind):
            continue
        # one held by an earlier failure stays its (the listing does not flip between two)
        if other.held_by in failed or await uow.commands.set_held(other, command.id):
            behind.append(other)
    uow.record(EventType.COMMAND_FAILED.value, order=order, data=event_data(command))
    await uow.commit()
    return Dispatched.FAILED


def event_data(command: ChannelCommand) -> dict[str, object]:
    return {
        "command_id": command.id,
        "kind": command.kind.value,
        "state": command.state.value,
        "attempts": command.attempts,
        "error": command.last_error,
        "result": command.result,
    }
