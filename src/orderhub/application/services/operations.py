"""What an operator does: find what failed or waits, retry or abandon it, resync an order
from its channel, resolve an attention reason; and the sweeper that re-queues what a crash
or a lost message left behind."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from orderhub.application.access import AccountLimit
from orderhub.application.hub import Hub
from orderhub.application.ports import (
    ChannelCommand,
    CommandState,
    InboxMessage,
    InboxState,
    UnitOfWork,
)
from orderhub.application.services.common import load_order, with_conflict_retry
from orderhub.application.services.intake import Stored, store_message
from orderhub.channels.spi import ChannelError, TransientChannelError
from orderhub.domain.corrections import DECISION_KINDS
from orderhub.domain.entities import AttentionCode
from orderhub.domain.errors import DomainError, InvalidTransition, NotSupportedByChannel
from orderhub.domain.events import EventType
from orderhub.domain.model import Order

FACT_KINDS = frozenset({"ship", "deliver"})
"""Commands that report what happened in the warehouse (a decision can be undone; a
parcel that left cannot)."""


class NotFound(DomainError):
    rule = "not-found"


class ChannelUnavailable(DomainError):
    """The channel did not answer (503): try again later."""

    rule = "channel-unavailable"


@dataclass(frozen=True, kw_only=True, slots=True)
class SweepResult:
    commands: int
    messages: int


async def failed_commands(
    hub: Hub, *, limit: int = 100, within: AccountLimit | None = None
) -> Sequence[ChannelCommand]:
    async with hub.uow() as uow:
        return await uow.commands.failed(limit=limit, within=within)


async def held_commands(
    hub: Hub, *, limit: int = 100, within: AccountLimit | None = None
) -> Sequence[ChannelCommand]:
    async with hub.uow() as uow:
        return await uow.commands.held(limit=limit, within=within)


async def failed_messages(
    hub: Hub, *, limit: int = 100, within: AccountLimit | None = None
) -> Sequence[InboxMessage]:
    async with hub.uow() as uow:
        return await uow.inbox.failed(limit=limit, within=within)


async def _failed_command(uow: UnitOfWork, command_id: str, *, rule: str) -> ChannelCommand:
    command = await uow.commands.get(command_id, for_update=True)
    if command is None:
        raise NotFound(f"no command {command_id}")
    if command.state is not CommandState.FAILED:
        raise InvalidTransition(
            f"command {command_id} is {command.state.value}: only failed commands can be "
            "retried or abandoned",
            rule=rule,
        )
    return command


def _record_action(
    uow: UnitOfWork, action: str, *, by: str | None, order: Order | None, **ids: str
) -> None:
    """What a person did, on the feed (only when the caller says who: ``by``)."""
    if by is not None:
        uow.record(
            EventType.OPERATOR_ACTION.value, order=order, data={"action": action, "by": by, **ids}
        )


async def retry_command(hub: Hub, command_id: str, *, by: str | None = None) -> ChannelCommand:
    """Send a failed command again, from attempt one. If its failure undid the decision it
    carried, the decision is made again first (409 if the order no longer allows it)."""

    async def attempt() -> ChannelCommand:
        async with hub.uow() as uow:
            command = await _failed_command(uow, command_id, rule="retry-not-failed")
            now = hub.clock.now()
            order = await load_order(uow, command.order_id)
            if command.result.get("decision_undone"):
                account = hub.channels.account(order.channel, order.account)
                caps = order.capabilities or account.capabilities
                order.redo_decision(
                    kind=command.kind.value, payload=command.payload, caps=caps, now=now
                )
            order.clear_attention(now=now, code=AttentionCode.COMMAND_FAILED, ref=command.id)
            command.state = CommandState.PENDING
            command.attempts = 0
            command.fence += 1  # no claim made before the retry can write any more
            command.next_attempt_at = now
            command.queued_at = now
            command.lease_until = None
            command.finished_at = None
            command.result = {}
            await uow.commands.save(command)
            await _unhold(uow, command)
            _record_action(uow, "command_retried", by=by, order=order, command_id=command.id)
            await uow.commit()
            return command

    command = await with_conflict_retry(attempt)
    hub.queue.enqueue_command(command_id)
    return command


async def abandon_command(hub: Hub, command_id: str, *, by: str | None = None) -> ChannelCommand:
    """Give a failed command up for good: it is never sent, and the order's later commands
    go (the order keeps showing what the channel says)."""

    async def attempt() -> tuple[ChannelCommand, list[str]]:
        async with hub.uow() as uow:
            command = await _failed_command(uow, command_id, rule="abandon-not-failed")
            now = hub.clock.now()
            order = await load_order(uow, command.order_id)
            order.clear_attention(now=now, code=AttentionCode.COMMAND_FAILED, ref=command.id)
            if command.kind.value in DECISION_KINDS and not command.result.get(
                "decision_undone"
            ):  # a decision that will never reach the channel: the channel's word stands
                order.undo_decision(kind=command.kind.value, payload=command.payload, now=now)
            if command.kind.value in FACT_KINDS:  # it happened; the channel will never know
                order.raise_attention(
                    AttentionCode.CHANNEL_REPORTS_LESS,
                    f"the {command.kind.value} of command {command.id} was abandoned: "
                    f"{order.channel} never took it ({command.last_error})",
                    now=now,
                    ref=command.id,
                )
            command.state = CommandState.ABANDONED
            command.finished_at = now
            await uow.commands.save(command)
            later = await _unhold(uow, command)
            _record_action(uow, "command_abandoned", by=by, order=order, command_id=command.id)
            await uow.commit()
            return command, later

    command, later = await with_conflict_retry(attempt)
    for other in later:
        hub.queue.enqueue_command(other)
    return command


async def _unhold(uow: UnitOfWork, command: ChannelCommand) -> list[str]:
    """The order's commands held behind ``command`` wait no more for an operator; its
    later pending commands, to be queued (each claim looks again at what it waits for).

    All of them, not only those read as held by it: a claim that read ``command`` failed
    just before this may hold one by it after this commits; queued again, that one's
    claim waits for that claim's row lock, then finds ``command`` failed no more."""
    later = []
    for other in await uow.commands.for_order(command.order_id):
        if other.seq <= command.seq or other.state is not CommandState.PENDING:
            continue
        if other.held_by == command.id:
            await uow.commands.set_held(other, None)
        later.append(other.id)
    return later


async def retry_message(hub: Hub, message_id: str, *, by: str | None = None) -> InboxMessage:
    async with hub.uow() as uow:
        message = await uow.inbox.get(message_id, for_update=True)
        if message is None:
            raise NotFound(f"no inbox message {message_id}")
        if message.state is not InboxState.FAILED:
            raise InvalidTransition(
                f"message {message_id} is {message.state.value}: only failed messages are retried",
                rule="retry-not-failed",
            )
        now = hub.clock.now()
        message.state = InboxState.RECEIVED
        message.attempts = 0
        message.fence += 1
        message.next_attempt_at = now
        message.queued_at = now
        message.lease_until = None
        await uow.inbox.save(message)
        _record_action(
            uow,
            "message_retried",
            by=by,
            order=None,
            message_id=message.id,
            channel=message.channel,
            account=message.account,
        )
        await uow.commit()
    hub.queue.enqueue_inbox(message_id)
    return message


async def resolve_attention(
    hub: Hub, order_id: str, *, code: AttentionCode | None, by: str | None = None
) -> int:
    """A person looked: clear the order's attention reasons (all, or one code). Reasons
    about a failed command are cleared by retrying or abandoning it."""

    async def attempt() -> int:
        async with hub.uow() as uow:
            order = await load_order(uow, order_id)
            if code is AttentionCode.COMMAND_FAILED:
                raise InvalidTransition(
                    "a failed command's reason clears when the command is retried or abandoned",
                    rule="attention-needs-command-decision",
                )
            cleared = 0
            for reason in list(order.attention):
                if reason.code is AttentionCode.COMMAND_FAILED:
                    continue
                if code is None or reason.code is code:
                    order.clear_attention(now=hub.clock.now(), code=reason.code, ref=reason.ref)
                    cleared += 1
            _record_action(uow, "attention_resolved", by=by, order=order)
            await uow.commit()
            return cleared

    return await with_conflict_retry(attempt)


async def resync_order(hub: Hub, order_id: str, *, by: str | None = None) -> Stored:
    """Read the order again from its channel; what it says goes through the inbox."""
    async with hub.uow() as uow:
        order = await load_order(uow, order_id)
    account = hub.channels.account(order.channel, order.account)
    try:
        message = await account.refresh(order)
    except TransientChannelError as exc:
        raise ChannelUnavailable(f"{order.channel} did not answer: {exc.message}") from exc
    except ChannelError as exc:
        raise NotSupportedByChannel(
            f"{order.channel} refused to show order {order.channel_order_id}: {exc.message}",
            rule="resync-refused",
        ) from exc
    if message is None:
        raise NotSupportedByChannel(
            f"the {order.channel} adapter cannot read one order again", rule="resync-not-supported"
        )
    stored = await store_message(
        hub,
        channel=order.channel,
        account=order.account,
        body=message.body,
        headers=message.headers,
        source="refresh",
        # each read is stored: the same answer as an earlier read must still heal what a
        # message applied since then set back (it is applied after it, in arrival order)
        key=f"{message.dedupe_key}:{hub.ids()}",
    )
    async with hub.uow() as uow:
        await uow.orders.mark_refreshed(order.id, hub.clock.now())
        _record_action(uow, "order_resynced", by=by, order=order, message_id=stored.message_id)
        await uow.commit()
    return stored


async def refresh_stale(hub: Hub, *, older_than_seconds: float, limit: int) -> tuple[int, int]:
    """Resync open orders the channel has said nothing of for a while: a lost status
    webhook is healed by the next refresh. Returns (refreshed, failed)."""
    cutoff = hub.clock.now() - timedelta(seconds=older_than_seconds)
    async with hub.uow() as uow:
        stale = await uow.orders.stale(older_than=cutoff, limit=limit)
    refreshed = failed = 0
    for order in stale:
        try:
            await resync_order(hub, order.id)
            refreshed += 1
        except Exception:  # one order the channel cannot show stops none of the others
            failed += 1
            async with hub.uow() as uow:  # not asked again before the next period
                await uow.orders.mark_refreshed(order.id, hub.clock.now())
                await uow.commit()
    return refreshed, failed


async def sweep(
    hub: Hub, *, requeue_after_seconds: float = 120.0, limit: int = 500, page: int = 100
) -> SweepResult:
    """Queue again what is due and was not handed to the queue for a while (a crash
    between commit and enqueue, a worker that died mid-job, a lost broker message): at
    most ``limit`` commands and ``limit`` messages, page by page, least recently queued
    first. Each row taken is marked queued, so the next pages and sweeps move on to others:
    rows that keep coming back never starve new ones, and backoff is never bypassed (only
    what is due is taken)."""
    commands = messages = 0
    while commands < limit or messages < limit:
        now = hub.clock.now()
        before = now - timedelta(seconds=requeue_after_seconds)
        command_page = min(page, limit - commands)
        message_page = min(page, limit - messages)
        async with hub.uow() as uow:
            command_ids = await uow.commands.due(now=now, queued_before=before, limit=command_page)
            message_ids = await uow.inbox.due(now=now, queued_before=before, limit=message_page)
            await uow.commands.mark_queued(command_ids, now)
            await uow.inbox.mark_queued(message_ids, now)
            await uow.commit()
        for command_id in command_ids:
            hub.queue.enqueue_command(command_id)
        for message_id in message_ids:
            hub.queue.enqueue_inbox(message_id)
        commands += len(command_ids)
        messages += len(message_ids)
        # done with each kind when its limit is reached or its page came back short (a
        # full page means progress: the loop ends)
        commands_done = command_page == 0 or len(command_ids) < command_page
        if commands_done and (message_page == 0 or len(message_ids) < message_page):
            break
    return SweepResult(commands=commands, messages=messages)
