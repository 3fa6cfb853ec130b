"""What the order-changing use cases share: load, check, change, queue the call, commit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from orderhub.application.hub import Hub
from orderhub.application.limits import REPLACEMENT, UNSTORABLE
from orderhub.application.ports import ChannelCommand, CommandKind, StoredResponse, UnitOfWork
from orderhub.channels.registry import ChannelNotFound
from orderhub.channels.spi import ChannelAccount, FollowUp
from orderhub.domain.capabilities import Capabilities
from orderhub.domain.errors import ConcurrencyConflict, DomainError, OrderNotFound
from orderhub.domain.model import Order

T = TypeVar("T")

CONFLICT_RETRIES = 3
MAX_ERROR_LENGTH = 2000


class IdempotencyKeyReused(DomainError):
    """The same ``Idempotency-Key`` came back with a different request."""

    rule = "idempotency-key-reused"


@dataclass(frozen=True, kw_only=True, slots=True)
class Idempotency:
    key: str  # scoped by the caller (the web layer prefixes the API key's name)
    fingerprint: str  # a hash of what the request asked for


@dataclass(frozen=True, kw_only=True, slots=True)
class CommandReceipt:
    """The answer to an accepted warehouse command (the channel call is queued)."""

    command_id: str
    order_id: str
    kind: str
    state: str
    order_status: str
    details: dict[str, Any] = field(default_factory=dict)


async def with_conflict_retry(attempt: Callable[[], Awaitable[T]]) -> T:
    """Run ``attempt`` again on fresh state when another writer won the race."""
    for _ in range(CONFLICT_RETRIES - 1):
        try:
            return await attempt()
        except ConcurrencyConflict:
            continue
    return await attempt()


async def load_order(uow: UnitOfWork, order_id: str) -> Order:
    order = await uow.orders.get(order_id)
    if order is None:
        raise OrderNotFound(f"no order {order_id}")
    return order


async def new_command(
    uow: UnitOfWork,
    hub: Hub,
    order: Order,
    kind: CommandKind,
    payload: Mapping[str, Any],
    now: datetime,
) -> ChannelCommand:
    """Add a command for ``order``, numbered after its others, due now (the caller enqueues
    it after the commit)."""
    command = ChannelCommand(
        id=hub.ids(),
        order_id=order.id,
        channel=order.channel,
        account=order.account,
        kind=kind,
        payload=dict(payload),
        created_at=now,
        seq=await uow.commands.next_seq(order.id),
        next_attempt_at=now,
        queued_at=now,
    )
    uow.commands.add(command)
    return command


def configured_account(hub: Hub, channel: str, account: str) -> ChannelAccount | None:
    """The channel account, or None when it is configured no more (a claim taken in one
    statement is then rolled back: the step-by-step claim fails the work, saying why)."""
    try:
        return hub.channels.account(channel, account)
    except ChannelNotFound:
        return None


def clip(error: str) -> str:
    """An error to store: at most :data:`MAX_ERROR_LENGTH` characters, and text PostgreSQL
    can store (a channel's error body may carry a NUL or a lone surrogate: the outcome
    would fail to be recorded, and the call be made again)."""
    return UNSTORABLE.sub(REPLACEMENT, error[:MAX_ERROR_LENGTH])


def fulfilments_done(account: ChannelAccount, order: Order, *, since: int = 0) -> list[FollowUp]:
    """What the adapter asks to send for each fulfilment the change just finished (its
    ``fulfilment.*`` event among the order's events from ``since`` on: the events of
    earlier changes in the same transaction, still pending, were answered already)."""
    done = {
        event.data["fulfilment_id"]
        for event in order.events[since:]
        if event.type.value.startswith("fulfilment.")
    }
    return [
        follow_up
        for fulfilment in order.fulfilments
        if fulfilment.id in done
        for follow_up in account.fulfilment_done(order, fulfilment)
    ]


Change = Callable[[Order, Capabilities, datetime], "tuple[dict[str, Any], dict[str, Any]]"]
Replay = Callable[[Order, Sequence[ChannelCommand]], "CommandReceipt | None"]
Also = Callable[[UnitOfWork, Order], Awaitable[None]]


async def run_order_command(
    hub: Hub,
    *,
    order_id: str,
    kind: CommandKind,
    change: Change,
    idempotency: Idempotency | None = None,
    replay: Replay | None = None,
    also: Also | None = None,
) -> CommandReceipt:
    """Apply ``change`` to the order and queue the channel call in the same transaction.

    ``change`` returns (payload for the channel call, details for the receipt).
    ``replay`` may recognise the request as one already carried out (a shipment sent
    twice) and return the first answer instead. ``also`` writes what else the command
    needs in the same transaction (an invoice's document)."""

    async def attempt() -> tuple[CommandReceipt, list[str]]:
        async with hub.uow() as uow:
            if idempotency is not None:
                stored = await uow.idempotency.get(idempotency.key)
                if stored is not None:
                    if stored.fingerprint != idempotency.fingerprint:
                        raise IdempotencyKeyReused(
                            "this Idempotency-Key was used for another request"
                        )
                    return CommandReceipt(**stored.body), []
            order = await load_order(uow, order_id)
            if replay is not None:
                first = replay(order, await uow.commands.for_order(order.id))
                if first is not None:
                    return first, []
            account = hub.channels.account(order.channel, order.account)
            caps = order.capabilities or account.capabilities
            now = hub.clock.now()
            payload, details = change(order, caps, now)
            account.preflight(kind, payload, order, caps)  # the channel's own rules
            if also is not None:
                await also(uow, order)
            command = await new_command(uow, hub, order, kind, payload, now)
            queued = [command.id]
            for follow_up in fulfilments_done(account, order):  # after the command
                later = await new_command(uow, hub, order, follow_up.kind, follow_up.payload, now)
                queued.append(later.id)
            receipt = CommandReceipt(
                command_id=command.id,
                order_id=order.id,
                kind=kind.value,
                state=command.state.value,
                order_status=order.status.value,
                details=details,
            )
            if idempotency is not None:
                await uow.idempotency.put(
                    StoredResponse(
                        key=idempotency.key,
                        fingerprint=idempotency.fingerprint,
                        status_code=202,
                        body=asdict(receipt),
                    )
                )
            await uow.commit()
            return receipt, queued

    receipt, queued = await with_conflict_retry(attempt)
    for command_id in queued:
        hub.queue.enqueue_command(command_id)
    return receipt
