"""What an operator does: find what failed, send it again, and sweep up after crashes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from orderhub.application.hub import Hub
from orderhub.application.ports import ChannelCommand, CommandState, InboxMessage, InboxState
from orderhub.domain.errors import DomainError, InvalidTransition


class NotFound(DomainError):
    rule = "not-found"


@dataclass(frozen=True, kw_only=True, slots=True)
class SweepResult:
    commands: int
    messages: int


async def failed_commands(hub: Hub, *, limit: int = 100) -> Sequence[ChannelCommand]:
    async with hub.uow() as uow:
        return await uow.commands.failed(limit=limit)


async def failed_messages(hub: Hub, *, limit: int = 100) -> Sequence[InboxMessage]:
    async with hub.uow() as uow:
        return await uow.inbox.failed(limit=limit)


async def retry_command(hub: Hub, command_id: str) -> ChannelCommand:
    async with hub.uow() as uow:
        command = await uow.commands.get(command_id, for_update=True)
        if command is None:
            raise NotFound(f"no command {command_id}")
        if command.state is not CommandState.FAILED:
            raise InvalidTransition(
                f"command {command_id} is {command.state.value}: only failed commands are retried",
                rule="retry-not-failed",
            )
        command.state = CommandState.PENDING
        command.attempts = 0
        command.next_attempt_at = None
        command.lease_until = None
        command.finished_at = None
        await uow.commands.save(command)
        await uow.commit()
    hub.queue.enqueue_command(command_id)
    return command


async def retry_message(hub: Hub, message_id: str) -> InboxMessage:
    async with hub.uow() as uow:
        message = await uow.inbox.get(message_id, for_update=True)
        if message is None:
            raise NotFound(f"no inbox message {message_id}")
        if message.state is not InboxState.FAILED:
            raise InvalidTransition(
                f"message {message_id} is {message.state.value}: only failed messages are retried",
                rule="retry-not-failed",
            )
        message.state = InboxState.RECEIVED
        await uow.inbox.save(message)
        await uow.commit()
    hub.queue.enqueue_inbox(message_id)
    return message


async def sweep(hub: Hub, *, grace_seconds: float = 30.0, limit: int = 500) -> SweepResult:
    """Queue again what a crash between commit and enqueue (or mid-dispatch) left behind."""
    now = hub.clock.now()
    before = now - timedelta(seconds=grace_seconds)
    async with hub.uow() as uow:
        commands = await uow.commands.due(now=now, created_before=before, limit=limit)
        messages = await uow.inbox.unprocessed(received_before=before, limit=limit)
    for command_id in commands:
        hub.queue.enqueue_command(command_id)
    for message_id in messages:
        hub.queue.enqueue_inbox(message_id)
    return SweepResult(commands=len(commands), messages=len(messages))
