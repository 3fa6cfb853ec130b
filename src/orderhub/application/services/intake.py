"""Channel intake: store every message before acknowledging it, then apply it at least once."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from orderhub.application.hub import Hub
from orderhub.application.ports import ChannelCommand, InboxMessage, InboxState
from orderhub.application.services.common import with_conflict_retry
from orderhub.channels.spi import ChannelAccount, TransientChannelError
from orderhub.domain.errors import ConcurrencyConflict
from orderhub.domain.model import ChannelSnapshot, Order

MAX_ERROR_LENGTH = 2000


@dataclass(frozen=True, kw_only=True, slots=True)
class Stored:
    message_id: str
    duplicate: bool


def dedupe_key(account: ChannelAccount, body: bytes, headers: Mapping[str, str]) -> str:
    own = account.dedupe_key(body, headers)
    if own:
        return f"{account.channel}:{account.name}:id:{own}"
    digest = hashlib.sha256(body).hexdigest()
    return f"{account.channel}:{account.name}:sha256:{digest}"


async def store_message(
    hub: Hub,
    *,
    channel: str,
    account: str,
    body: bytes,
    headers: Mapping[str, str],
    source: str = "webhook",
    key: str | None = None,
) -> Stored:
    """Durably store a raw message (deduplicated) and queue it for processing."""
    acct = hub.channels.account(channel, account)
    message = InboxMessage(
        id=hub.ids(),
        channel=channel,
        account=account,
        dedupe_key=f"{channel}:{account}:key:{key}" if key else dedupe_key(acct, body, headers),
        body=body,
        headers=dict(headers),
        received_at=hub.clock.now(),
        source=source,
    )
    async with hub.uow() as uow:
        new = await uow.inbox.add(message)
        stored_id = message.id if new else await uow.inbox.id_for(message.dedupe_key)
        await uow.commit()
    if new:
        hub.queue.enqueue_inbox(message.id)
    # a duplicate is answered with the id of the message first stored, for operators
    return Stored(message_id=stored_id or message.id, duplicate=not new)


async def process_message(hub: Hub, message_id: str) -> InboxState | None:
    """Map and apply one stored message. A transient channel error propagates (the worker
    retries it); any other failure marks the message failed, with its reason, for an operator."""
    async with hub.uow() as uow:
        message = await uow.inbox.get(message_id)
    if message is None or message.state is InboxState.PROCESSED:
        return None if message is None else message.state
    account = hub.channels.account(message.channel, message.account)
    try:
        snapshots = await account.snapshots(message.body, message.headers)
        for snapshot in snapshots:
            await apply_snapshot(hub, account, snapshot)
    except (TransientChannelError, ConcurrencyConflict) as exc:
        # the worker tries again later: a channel that did not answer, or writers that kept
        # winning the race for the same order
        await _finish(hub, message_id, InboxState.RECEIVED, f"transient: {exc}")
        raise
    except Exception as exc:
        await _finish(hub, message_id, InboxState.FAILED, f"{type(exc).__name__}: {exc}")
        return InboxState.FAILED
    await _finish(hub, message_id, InboxState.PROCESSED, None)
    return InboxState.PROCESSED


async def _finish(hub: Hub, message_id: str, state: InboxState, error: str | None) -> None:
    async with hub.uow() as uow:
        message = await uow.inbox.get(message_id, for_update=True)
        if message is None or message.state is InboxState.PROCESSED:
            return
        message.state = state
        message.attempts += 1
        message.last_error = error[:MAX_ERROR_LENGTH] if error else None
        if state is InboxState.PROCESSED:
            message.processed_at = hub.clock.now()
        await uow.inbox.save(message)
        await uow.commit()


async def apply_snapshot(hub: Hub, account: ChannelAccount, snapshot: ChannelSnapshot) -> Order:
    """Create the order or merge what the channel saw; queue the channel's follow-ups."""

    async def attempt() -> tuple[Order, list[str]]:
        async with hub.uow() as uow:
            order = await uow.orders.get_by_channel_id(
                account.channel, account.name, snapshot.channel_order_id
            )
            now = hub.clock.now()
            new = order is None
            if order is None:
                order = Order.receive(
                    snapshot,
                    order_id=hub.ids(),
                    channel=account.channel,
                    account=account.name,
                    caps=account.capabilities,
                    now=now,
                    new_id=hub.ids,
                )
                uow.orders.add(order)
            else:
                order.apply(snapshot, caps=account.capabilities, now=now, new_id=hub.ids)
            queued = []
            for follow_up in account.follow_ups(order, new=new):
                command = ChannelCommand(
                    id=hub.ids(),
                    order_id=order.id,
                    channel=order.channel,
                    account=order.account,
                    kind=follow_up.kind,
                    payload=dict(follow_up.payload),
                    created_at=now,
                )
                uow.commands.add(command)
                queued.append(command.id)
            await uow.commit()
            return order, queued

    order, queued = await with_conflict_retry(attempt)
    for command_id in queued:
        hub.queue.enqueue_command(command_id)
    return order
