"""Carry a queued command out at its channel: at least once, retried with backoff."""

from __future__ import annotations

from datetime import timedelta

from orderhub.application.hub import Hub
from orderhub.application.ports import ChannelCommand, CommandState, UnitOfWork
from orderhub.application.services.common import with_conflict_retry
from orderhub.channels.spi import ChannelError, TransientChannelError
from orderhub.domain.events import EventType
from orderhub.domain.model import Order

MAX_ERROR_LENGTH = 2000


async def dispatch_command(hub: Hub, command_id: str) -> CommandState | None:
    """Claim the command (a lease, so two workers never call at once), call, record.

    A worker that dies mid-call leaves the lease to expire; the sweeper then queues the
    command again. Adapters pass ``command.id`` as the channel's idempotency key where the
    channel has one, so the repeated call is harmless."""
    now = hub.clock.now()
    async with hub.uow() as uow:
        command = await uow.commands.get(command_id, for_update=True)
        if command is None or command.state is not CommandState.PENDING:
            return None if command is None else command.state
        if command.next_attempt_at is not None and command.next_attempt_at > now:
            return command.state  # not due: its delayed message or the sweeper brings it back
        if command.lease_until is not None and command.lease_until > now:
            return command.state  # another worker holds it
        command.attempts += 1
        command.lease_until = now + timedelta(seconds=hub.retry.lease_seconds)
        await uow.commands.save(command)
        order = await uow.orders.get(command.order_id)
        await uow.commit()
    if order is None:  # cannot happen while orders are never deleted; fail loudly if it does
        return await _fail(hub, command, f"order {command.order_id} is gone", status=None)
    account = hub.channels.account(command.channel, command.account)
    try:
        outcome = await account.execute(command, order)
    except TransientChannelError as exc:
        return await _retry(hub, command, exc.message, exc.retry_after, status=exc.status)
    except ChannelError as exc:
        return await _fail(hub, command, exc.message, status=exc.status)
    except Exception as exc:  # an adapter bug: retry, then fail with the reason kept
        return await _retry(hub, command, f"{type(exc).__name__}: {exc}", None, status=None)

    async def record_success() -> None:
        async with hub.uow() as uow:
            stored = await _reload(uow, command)
            stored.state = CommandState.SUCCEEDED
            stored.result = dict(outcome.data)
            stored.last_error = None
            stored.lease_until = None
            stored.finished_at = hub.clock.now()
            await uow.commands.save(stored)
            current = await uow.orders.get(stored.order_id)
            if current is not None and outcome.snapshot is not None:
                current.apply(
                    outcome.snapshot, caps=account.capabilities, now=hub.clock.now(), new_id=hub.ids
                )
            uow.record(EventType.COMMAND_SUCCEEDED.value, order=current, data=_event_data(stored))
            await uow.commit()

    # the call happened: record it even if a concurrent writer changed the order meanwhile
    await with_conflict_retry(record_success)
    return CommandState.SUCCEEDED


async def _reload(uow: UnitOfWork, command: ChannelCommand) -> ChannelCommand:
    stored = await uow.commands.get(command.id, for_update=True)
    return stored if stored is not None else command


async def _retry(
    hub: Hub, command: ChannelCommand, error: str, retry_after: float | None, *, status: int | None
) -> CommandState:
    if command.attempts >= hub.retry.max_attempts:
        return await _fail(
            hub, command, f"gave up after {command.attempts} attempts: {error}", status=status
        )
    delay = hub.retry.delay(command.attempts, retry_after=retry_after, rng=hub.rng)
    async with hub.uow() as uow:
        stored = await _reload(uow, command)
        stored.last_error = error[:MAX_ERROR_LENGTH]
        stored.next_attempt_at = hub.clock.now() + timedelta(seconds=delay)
        stored.lease_until = None
        await uow.commands.save(stored)
        await uow.commit()
    hub.queue.enqueue_command(command.id, delay_seconds=delay)
    return CommandState.PENDING


async def _fail(
    hub: Hub, command: ChannelCommand, error: str, *, status: int | None
) -> CommandState:
    async with hub.uow() as uow:
        stored = await _reload(uow, command)
        stored.state = CommandState.FAILED
        stored.last_error = error[:MAX_ERROR_LENGTH]
        stored.lease_until = None
        stored.finished_at = hub.clock.now()
        if status is not None:
            stored.result = {"status": status}
        await uow.commands.save(stored)
        order: Order | None = await uow.orders.get(stored.order_id)
        uow.record(EventType.COMMAND_FAILED.value, order=order, data=_event_data(stored))
        await uow.commit()
    return CommandState.FAILED


def _event_data(command: ChannelCommand) -> dict[str, object]:
    return {
        "command_id": command.id,
        "kind": command.kind.value,
        "state": command.state.value,
        "attempts": command.attempts,
        "error": command.last_error,
        "result": command.result,
    }
