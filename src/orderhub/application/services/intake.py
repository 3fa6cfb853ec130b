"""Channel intake: store every message before acknowledging it, then apply it once, in order.

Storing (:func:`store_message`): the raw message goes to the inbox with its dedupe key,
its arrival number (``seq``) and the channel's order id when the adapter can read it
(``order_key``); then it is queued. *Crash between the commit and the enqueue*: the
message is stored and acknowledged; the sweeper queues it.

Processing (:func:`process_message`), like a command's dispatch:

1. **Claim** (the message row locked): received, due, not leased, under the attempt cap
   (over it: failed, "transient errors exhausted: <last>"), and no earlier message of the
   same order still waiting; ``attempts`` and ``fence`` go up, a lease is taken, and that
   is committed before anything of the message is done (a message that kills its worker
   still uses up its attempts). One statement when all holds (:meth:`InboxRepository.claim`);
   otherwise the checks one by one say why.
2. **Map** (may call the channel: topi's thin webhooks). A transient error schedules
   another attempt with backoff (``Retry-After`` honoured); any other error fails the
   message with its reason, for an operator.
3. **Apply and mark processed in one transaction**, only under the claim's fence (marked
   first: the row stays locked to the commit, and a lost claim stops there). *Crash
   before this commit*: nothing of the message was applied; the lease runs out and the
   sweeper brings it back. *After*: it is processed, once.
4. The order's next waiting message is queued.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from orderhub.application import snapshot_codec
from orderhub.application.hub import Hub
from orderhub.application.limits import check_size, storable
from orderhub.application.ports import ChannelCommand, InboxMessage, InboxState, UnitOfWork
from orderhub.application.services.common import (
    clip,
    configured_account,
    fulfilments_done,
    new_command,
    with_conflict_retry,
)
from orderhub.channels.registry import ChannelNotFound
from orderhub.channels.spi import ChannelAccount, TransientChannelError
from orderhub.domain.errors import ConcurrencyConflict, DomainError
from orderhub.domain.model import ChannelSnapshot, Order

COMMAND_SOURCE = "command"  # a channel's answer to a command, stored by the dispatcher
MAX_OWN_KEY: Final = 200  # an adapter's dedupe key longer than this is stored hashed


@dataclass(frozen=True, kw_only=True, slots=True)
class Stored:
    message_id: str
    duplicate: bool


class Processed(StrEnum):
    """What one inbox job did."""

    PROCESSED = "processed"
    FAILED = "failed"
    RETRY = "retry"
    WAITING = "waiting"  # an earlier message of the same order goes first
    NOT_DUE = "not_due"
    LEASED = "leased"
    STALE = "stale"
    ENDED = "ended"  # processed or failed already
    MISSING = "missing"


def dedupe_key(account: ChannelAccount, body: bytes, headers: Mapping[str, str]) -> str:
    """The adapter's key (a message id, or a natural key read off the body), else the
    body's hash. A key the database could not index as it is (a NUL, a lone surrogate,
    over :data:`MAX_OWN_KEY` characters: it comes from what the sender wrote) is hashed;
    an adapter whose key raises on an odd body leaves it to the body's hash."""
    try:
        own = account.dedupe_key(body, headers)
    except Exception:  # the message is stored all the same, and fails when mapped
        own = None
    if own and _storable(own):
        return f"{account.channel}:{account.name}:id:{own}"
    if own:
        digest = hashlib.sha256(own.encode("utf-8", "surrogatepass")).hexdigest()
        return f"{account.channel}:{account.name}:id-sha256:{digest}"
    digest = hashlib.sha256(body).hexdigest()
    return f"{account.channel}:{account.name}:sha256:{digest}"


def _storable(key: str) -> bool:
    if len(key) > MAX_OWN_KEY or "\x00" in key:
        return False
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _order_key(account: ChannelAccount, body: bytes, headers: Mapping[str, str]) -> str | None:
    try:
        key = account.order_key(body, headers)
    except Exception:  # an unreadable body is stored all the same, and fails when mapped
        return None
    return None if key is None else storable_order_key(key)


def storable_order_key(channel_order_id: str) -> str:
    """The inbox's order key for a channel order id: the id itself, or its hash when the
    database could not index it as it is (the same hash wherever the id comes from, so
    the messages of one order still line up)."""
    if _storable(channel_order_id):
        return channel_order_id
    digest = hashlib.sha256(channel_order_id.encode("utf-8", "surrogatepass")).hexdigest()
    return f"sha256:{digest}"


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
    now = hub.clock.now()
    message = InboxMessage(
        id=hub.ids(),
        channel=channel,
        account=account,
        dedupe_key=f"{channel}:{account}:key:{key}" if key else dedupe_key(acct, body, headers),
        body=body,
        headers=dict(headers),
        received_at=now,
        source=source,
        order_key=_order_key(acct, body, headers),
        next_attempt_at=now,
        queued_at=now,
    )
    if hub.intake is not None:
        new, stored_id = await hub.intake.store(message)
    else:
        async with hub.uow() as uow:
            new = await uow.inbox.add(message)
            stored_id = message.id if new else await uow.inbox.id_for(message.dedupe_key)
            await uow.commit()
    if new:
        hub.queue.enqueue_inbox(message.id)
    # a duplicate is answered with the id of the message first stored, for operators
    return Stored(message_id=stored_id or message.id, duplicate=not new)


async def command_answer(
    uow: UnitOfWork, hub: Hub, command: ChannelCommand, snapshot: ChannelSnapshot
) -> str | None:
    """Store what the channel answered to ``command`` as an inbox message, in ``uow``; its
    id (to queue after the commit), or None when this answer was stored already."""
    now = hub.clock.now()
    message = InboxMessage(
        id=hub.ids(),
        channel=command.channel,
        account=command.account,
        dedupe_key=f"{command.channel}:{command.account}:command:{command.id}:{command.fence}",
        body=snapshot_codec.encode(snapshot),
        headers={"x-orderhub-command": command.id},
        received_at=now,
        source=COMMAND_SOURCE,
        order_key=storable_order_key(snapshot.channel_order_id),
        next_attempt_at=now,
        queued_at=now,
    )
    return message.id if await uow.inbox.add(message) else None


@dataclass(frozen=True, kw_only=True, slots=True)
class _Claim:
    message: InboxMessage
    account: ChannelAccount


async def process_message(
    hub: Hub, message_id: str, *, seen: Callable[[InboxMessage], None] | None = None
) -> Processed:
    """Map and apply one stored message (see the module's docstring). ``seen`` is shown
    the message as the claim reads it (the caller's logs and metrics name its channel
    without reading it a second time)."""
    claimed = await with_conflict_retry(lambda: _claim(hub, message_id, seen))
    if not isinstance(claimed, _Claim):
        if claimed is Processed.FAILED:  # over its cap: the order's next message may go
            async with hub.uow(read_only=True) as uow:
                ended = await uow.inbox.get(message_id)
            if ended is not None:
                await _next_of_order(hub, ended)
        return claimed
    message, account = claimed.message, claimed.account
    try:
        snapshots = await _map(account, message)
    except TransientChannelError as exc:
        return await _retry(hub, message, exc.message, exc.retry_after)
    except ConcurrencyConflict as exc:
        return await _retry(hub, message, f"ConcurrencyConflict: {exc}", None)
    except Exception as exc:
        return await _fail(hub, message, f"{type(exc).__name__}: {exc}")
    try:
        result, follow_ups = await with_conflict_retry(lambda: _apply(hub, message, snapshots))
    except ConcurrencyConflict as exc:  # writers kept winning the race for the order
        return await _retry(hub, message, f"ConcurrencyConflict: {exc}", None)
    except DomainError as exc:  # a snapshot the domain refuses (ambiguous, empty...)
        return await _fail(hub, message, f"{type(exc).__name__}: {exc}")
    for command_id in follow_ups:
        hub.queue.enqueue_command(command_id)
    if result is Processed.PROCESSED:
        await _next_of_order(hub, message)
    return result


async def _map(account: ChannelAccount, message: InboxMessage) -> Sequence[ChannelSnapshot]:
    if message.source == COMMAND_SOURCE:
        return [snapshot_codec.decode(message.body)]
    return await account.snapshots(message.body, message.headers)


async def _claim(
    hub: Hub, message_id: str, seen: Callable[[InboxMessage], None] | None = None
) -> _Claim | Processed:
    now = hub.clock.now()
    lease_until = now + timedelta(seconds=hub.retry.lease_seconds)
    async with hub.uow() as uow:  # the usual case, in one statement
        message = await uow.inbox.claim(
            message_id, now=now, lease_until=lease_until, max_attempts=hub.retry.max_attempts
        )
        account = (
            None if message is None else configured_account(hub, message.channel, message.account)
        )
        if message is not None and account is not None:
            if seen is not None:
                seen(message)
            await uow.commit()
            return _Claim(message=message, account=account)
    return await _claim_or_why(hub, message_id, now, lease_until, seen)


async def _claim_or_why(
    hub: Hub,
    message_id: str,
    now: datetime,
    lease_until: datetime,
    seen: Callable[[InboxMessage], None] | None,
) -> _Claim | Processed:
    """The claim step by step: why the message cannot be claimed (or, if what stood in
    the way has gone meanwhile, the claim)."""
    async with hub.uow() as uow:
        message = await uow.inbox.get(message_id, for_update=True)
        if message is None:
            return Processed.MISSING
        if seen is not None:
            seen(message)
        if message.state is not InboxState.RECEIVED:
            return Processed.ENDED
        if message.next_attempt_at is not None and message.next_attempt_at > now:
            return Processed.NOT_DUE
        if message.lease_until is not None and message.lease_until > now:
            return Processed.LEASED
        try:
            account = hub.channels.account(message.channel, message.account)
        except ChannelNotFound as exc:
            return await _end(uow, hub, message, InboxState.FAILED, exc.detail)
        if message.attempts >= hub.retry.max_attempts:
            last = message.last_error or "no outcome was recorded (the worker died or timed out)"
            return await _end(
                uow, hub, message, InboxState.FAILED, f"transient errors exhausted: {last}"
            )
        if message.order_key is not None and await uow.inbox.first_waiting(
            message.channel, message.account, message.order_key, before_seq=message.seq
        ):
            return Processed.WAITING
        message.attempts += 1
        message.fence += 1
        message.lease_until = lease_until
        await uow.inbox.save(message)
        await uow.commit()
    return _Claim(message=message, account=account)


async def _apply(
    hub: Hub, message: InboxMessage, snapshots: Sequence[ChannelSnapshot]
) -> tuple[Processed, list[str]]:
    async with hub.uow() as uow:
        # first: it locks the message's row to the commit, and a lost claim ends it here
        if not await uow.inbox.finish(message.id, fence=message.fence, at=hub.clock.now()):
            return Processed.STALE, []
        account = hub.channels.account(message.channel, message.account)
        follow_ups: list[str] = []
        for snapshot in snapshots:
            _, queued = await apply_in(uow, hub, account, snapshot, seq=message.seq)
            follow_ups.extend(queued)
        await uow.commit()
        return Processed.PROCESSED, follow_ups


async def _retry(
    hub: Hub, message: InboxMessage, error: str, retry_after: float | None
) -> Processed:
    if message.attempts >= hub.retry.max_attempts:
        return await _fail(hub, message, f"transient errors exhausted: {error}")
    delay = hub.retry.delay(message.attempts, retry_after=retry_after, rng=hub.rng)

    async def record() -> Processed:
        async with hub.uow() as uow:
            stored = await uow.inbox.get(message.id, for_update=True)
            if stored is None or stored.fence != message.fence:
                return Processed.STALE
            due = hub.clock.now() + timedelta(seconds=delay)
            stored.last_error = clip(f"transient: {error}")
            stored.next_attempt_at = due
            stored.queued_at = due
            stored.lease_until = None
            if not await uow.inbox.save(stored, fence=message.fence):
                return Processed.STALE
            await uow.commit()
            return Processed.RETRY

    result = await with_conflict_retry(record)
    if result is Processed.RETRY:
        hub.queue.enqueue_inbox(message.id, delay_seconds=delay)
    return result


async def _fail(hub: Hub, message: InboxMessage, error: str) -> Processed:
    async def record() -> Processed:
        async with hub.uow() as uow:
            stored = await uow.inbox.get(message.id, for_update=True)
            if stored is None or stored.fence != message.fence:
                return Processed.STALE
            return await _end(uow, hub, stored, InboxState.FAILED, error, fence=message.fence)

    result = await with_conflict_retry(record)
    if result is Processed.FAILED:
        await _next_of_order(hub, message)  # a failed message does not stop its order's news
    return result


async def _end(
    uow: UnitOfWork,
    hub: Hub,
    message: InboxMessage,
    state: InboxState,
    error: str | None,
    *,
    fence: int | None = None,
) -> Processed:
    message.state = state
    message.last_error = clip(error) if error else None
    message.lease_until = None
    if not await uow.inbox.save(message, fence=fence if fence is not None else message.fence):
        return Processed.STALE
    await uow.commit()
    return Processed.FAILED if state is InboxState.FAILED else Processed.PROCESSED


async def _next_of_order(hub: Hub, message: InboxMessage) -> None:
    if message.order_key is None:
        return
    async with hub.uow(read_only=True) as uow:
        waiting = await uow.inbox.first_waiting(message.channel, message.account, message.order_key)
    if waiting is not None:
        hub.queue.enqueue_inbox(waiting)


async def apply_in(
    uow: UnitOfWork,
    hub: Hub,
    account: ChannelAccount,
    snapshot: ChannelSnapshot,
    *,
    seq: int | None = None,
) -> tuple[Order, list[str]]:
    """Create the order or merge what the channel saw, in ``uow``; add the channel's
    follow-up commands. Returns the order and the ids of the commands to queue."""
    check_size(snapshot)  # before anything is read or built: a huge order fails its message
    snapshot = storable(snapshot)
    order = await uow.orders.get_by_channel_id(
        account.channel, account.name, snapshot.channel_order_id
    )
    now = hub.clock.now()
    new = order is None
    # one message may carry the order twice: the unit of work hands back the same order,
    # the first snapshot's events still pending; only this snapshot's own count here
    since = 0 if order is None else len(order.events)
    caps = account.capabilities_for(snapshot)  # this order's rules (its sales channel's)
    if order is None:
        order = Order.receive(
            snapshot,
            order_id=hub.ids(),
            channel=account.channel,
            account=account.name,
            caps=caps,
            now=now,
            new_id=hub.ids,
            seq=seq,
        )
        uow.orders.add(order)
    else:
        order.capabilities = caps
        order.apply(snapshot, caps=caps, now=now, new_id=hub.ids, seq=seq)
    follow_ups = [
        *account.follow_ups(order, new=new),
        *fulfilments_done(account, order, since=since),
    ]
    queued = []
    for follow_up in follow_ups:
        command = await new_command(uow, hub, order, follow_up.kind, follow_up.payload, now)
        queued.append(command.id)
    return order, queued


async def apply_snapshot(hub: Hub, account: ChannelAccount, snapshot: ChannelSnapshot) -> Order:
    """Apply one snapshot in its own transaction (tests, tools); queue the follow-ups."""

    async def attempt() -> tuple[Order, list[str]]:
        async with hub.uow() as uow:
            order, queued = await apply_in(uow, hub, account, snapshot)
            await uow.commit()
            return order, queued

    order, queued = await with_conflict_retry(attempt)
    for command_id in queued:
        hub.queue.enqueue_command(command_id)
    return order
